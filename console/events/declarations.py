"""Event types of the console shell itself: who signed in and out."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver
from django.http import HttpRequest

from console.events.catalog import Metric, declare
from console.events.pipeline import emit
from console.events.rollups import Tally, count

USER_LOGGED_IN = declare(
    "auth.logged_in",
    description="A user signed in.",
    required={"username"},
    audit=True,
    metrics=[Metric("console_logins_total", "counter", "Successful sign-ins.")],
)
USER_LOGGED_OUT = declare("auth.logged_out", description="A user signed out.", required={"username"}, audit=True)
USER_LOGIN_FAILED = declare(
    "auth.login_failed",
    description="A sign-in attempt failed.",
    required={"username"},
    level="warning",
    audit=True,
    metrics=[Metric("console_login_failures_total", "counter", "Failed sign-in attempts.")],
)


@receiver(user_logged_in, dispatch_uid="console.events.logged_in")
def _logged_in(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    emit(USER_LOGGED_IN, actor=user, username=user.get_username())


@receiver(user_logged_out, dispatch_uid="console.events.logged_out")
def _logged_out(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        emit(USER_LOGGED_OUT, actor=user, username=user.get_username())


@receiver(user_login_failed, dispatch_uid="console.events.login_failed")
def _login_failed(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    emit(USER_LOGIN_FAILED, username=str(credentials.get("username", ""))[:150])


WEBHOOK_CREATED = declare(
    "webhook.created",
    description="A user added a webhook endpoint.",
    required={"endpoint_id", "name", "url", "event_types"},
    audit=True,
)
WEBHOOK_UPDATED = declare(
    "webhook.updated",
    description="A user changed a webhook endpoint.",
    required={"endpoint_id", "changed"},
    audit=True,
)
WEBHOOK_DISABLED = declare(
    "webhook.disabled",
    description="A webhook endpoint was switched off after a 410 Gone or nothing but failures for days.",
    required={"endpoint_id", "reason"},
    level="warning",
    audit=True,
    metrics=[Metric("console_webhooks_disabled_total", "counter", "Webhook endpoints switched off.")],
)
WEBHOOK_ENABLED = declare(
    "webhook.enabled",
    description="A user switched a disabled webhook endpoint on again, resuming where it stopped or from now.",
    required={"endpoint_id", "resume", "queued", "skipped"},
    optional={"operation_id"},
    audit=True,
)
WEBHOOK_TESTED = declare(
    "webhook.tested",
    description="A user sent a signed sample event to a webhook endpoint.",
    required={"endpoint_id", "ok", "status_code", "error"},
    audit=True,
)
WEBHOOK_SECRET_ROTATED = declare(
    "webhook.secret_rotated",
    description="A user gave a webhook endpoint a new signing secret; the old one signs too until it expires.",
    required={"endpoint_id", "previous_expires_at"},
    audit=True,
)
WEBHOOK_REPLAY_STARTED = declare(
    "webhook.replay_started",
    description="A user started re-delivering a range of the log to a webhook endpoint.",
    required={"endpoint_id", "operation_id", "after", "upto", "count"},
    optional={"since", "until"},
    audit=True,
)
WEBHOOK_REPLAY_CANCELLED = declare(
    "webhook.replay_cancelled",
    description="A user cancelled a replay to a webhook endpoint; what it had queued is still delivered.",
    required={"endpoint_id", "operation_id", "done"},
    audit=True,
)
WEBHOOK_DELIVERY_RESENT = declare(
    "webhook.delivery_resent",
    description="A user queued a webhook delivery again.",
    required={"endpoint_id", "delivery_id", "resent_from", "position"},
    audit=True,
)

SUBSCRIPTION_PAUSED = declare(
    "subscription.paused",
    description="A user paused a subscriber: it reads nothing until resumed.",
    required={"name", "position"},
    audit=True,
)
SUBSCRIPTION_RESUMED = declare(
    "subscription.resumed",
    description="A user resumed a subscriber (any backoff is cleared, so it retries at once).",
    required={"name", "position"},
    audit=True,
)

ROLLUPS_REBUILT = declare(
    "rollups.rebuilt",
    description="A user dropped the charts' rollups to rebuild them from the log.",
    required={"buckets"},
    audit=True,
)
WEBHOOK_ATTEMPTED = declare(
    "webhook.attempted",
    description="One attempt to deliver an event to a webhook endpoint, and how it went.",
    required={"endpoint_id", "delivery_id", "ok", "ms"},
    optional={"status_code"},
    retention_days=30,
)


def webhook_attempt_tallies(data: Mapping[str, Any]) -> Iterator[Tally]:
    outcome = "succeeded" if data.get("ok") else "failed"
    ms = data.get("ms")
    value = float(ms) if isinstance(ms, int | float) else None
    yield "webhooks.attempts", outcome, value
    yield f"webhooks.endpoint.{data.get('endpoint_id')}", outcome, value


count(WEBHOOK_ATTEMPTED.name, webhook_attempt_tallies)


LOG_VERIFIED = declare(
    "log.verified",
    description="The sealed log was checked against its seals (from the console or manage.py events verify).",
    required={"ok", "seals", "checked", "archived", "unsealed", "head", "problem", "position", "problems"},
    optional={"listed", "operation_id"},
    audit=True,
)
LOG_VERIFY_STARTED = declare(
    "log.verify_started",
    description="A user asked for the sealed log to be verified; a background operation checks it.",
    required={"operation_id"},
    audit=True,
)
LOG_VERIFY_CANCELLED = declare(
    "log.verify_cancelled",
    description="A user cancelled a verification of the sealed log before it finished.",
    required={"operation_id", "done"},
    audit=True,
)
