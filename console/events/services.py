"""The events app's write functions: webhook endpoints, resending a delivery, pausing a subscriber, rebuilding
the rollups.

Each changes rows inside ``transaction.atomic()`` and emits the event naming the actor; sending happens in
the webhook task, enqueued after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from console.core.models import Operation
from console.core.services import start_operation
from console.events import rollups, seal, seal_check, subscriptions, webhook_replay
from console.events.conf import events_settings
from console.events.declarations import (
    LOG_VERIFY_CANCELLED,
    LOG_VERIFY_STARTED,
    ROLLUPS_REBUILT,
    SUBSCRIPTION_PAUSED,
    SUBSCRIPTION_RESUMED,
    WEBHOOK_CREATED,
    WEBHOOK_DELIVERY_RESENT,
    WEBHOOK_ENABLED,
    WEBHOOK_REPLAY_CANCELLED,
    WEBHOOK_REPLAY_STARTED,
    WEBHOOK_SECRET_ROTATED,
    WEBHOOK_TESTED,
    WEBHOOK_UPDATED,
)
from console.events.models import Checkpoint, Rollup, WebhookDelivery, WebhookEndpoint, generate_webhook_secret
from console.events.pipeline import emit
from console.events.webhook_sender import Outcome, WebhookPublisher, dispatch_on_commit, send_sample

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def webhook_create(
    *, actor: AbstractBaseUser, name: str, url: str, event_types: list[str], active: bool = True
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            name=name, url=url, event_types=sorted(event_types), active=active, created_by_id=actor.pk
        )
        emit(
            WEBHOOK_CREATED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            name=name,
            url=url,
            event_types=endpoint.event_types,
        )
    return endpoint


def webhook_update(
    *, actor: AbstractBaseUser, endpoint: WebhookEndpoint, name: str, url: str, event_types: list[str], active: bool
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        changed = sorted(
            key
            for key, value in (("name", name), ("url", url), ("event_types", sorted(event_types)), ("active", active))
            if getattr(endpoint, key) != value
        )
        endpoint.name, endpoint.url, endpoint.event_types = name, url, sorted(event_types)
        if active and not endpoint.active:
            # Switched on from the edit form: from now, as a fresh endpoint would start.
            _give_up_waiting(endpoint)
            _clear_disabled(endpoint)
        elif endpoint.active and not active:
            endpoint.disabled_position = _publisher_position()
        endpoint.active = active
        endpoint.save()
        emit(
            WEBHOOK_UPDATED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            changed=changed,
        )
    return endpoint


def _publisher_position() -> int:
    """How far the webhook publisher has read, its checkpoint locked so that no batch is handled meanwhile."""
    checkpoint = Checkpoint.objects.select_for_update().filter(name=WebhookPublisher.name).first()
    return checkpoint.position if checkpoint is not None else 0


def _clear_disabled(endpoint: WebhookEndpoint) -> None:
    endpoint.active = True
    endpoint.disabled_reason = ""
    endpoint.disabled_at = endpoint.disabled_position = endpoint.failing_since = None
    endpoint.failure_streak = 0


def _give_up_waiting(endpoint: WebhookEndpoint) -> int:
    return endpoint.deliveries.filter(status__in=WAITING).update(
        status=WebhookDelivery.Status.FAILED,
        claimed_at=None,
        last_error="Given up: the endpoint was re-enabled from now.",
    )


WAITING = [WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING, WebhookDelivery.Status.SENDING]


@dataclass(frozen=True)
class Enabled:
    """What re-enabling did: deliveries due again, deliveries given up, and the operation that queues the
    events published while the endpoint was off (resuming only, when there were any)."""

    due: int
    skipped: int
    missed: Operation | None = None


def webhook_enable(*, actor: AbstractBaseUser, endpoint: WebhookEndpoint, resume: bool) -> Enabled:
    """Switch a disabled endpoint on again.

    ``resume``: its waiting deliveries are due at once, and a background operation queues every event it
    wants that was published while it was off (once each: what it already has is skipped). Otherwise those
    are given up and it receives what is published from now on.
    """
    with transaction.atomic():
        upto = _publisher_position()
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        if endpoint.active:
            return Enabled(0, 0)
        enabled = Enabled(0, 0)
        if resume:
            due = endpoint.deliveries.filter(status__in=WAITING).update(
                status=WebhookDelivery.Status.RETRYING, claimed_at=None, next_attempt_at=timezone.now()
            )
            after = endpoint.disabled_position if endpoint.disabled_position is not None else upto
            enabled = Enabled(due, 0, _queue_missed(actor, endpoint, after=after, upto=upto))
        else:
            enabled = Enabled(0, _give_up_waiting(endpoint))
        _clear_disabled(endpoint)
        endpoint.save()
        emit(
            WEBHOOK_ENABLED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            resume=resume,
            queued=enabled.due,
            skipped=enabled.skipped,
            operation_id=enabled.missed.pk if enabled.missed is not None else None,
        )
        dispatch_on_commit()
    return enabled


def _queue_missed(actor: AbstractBaseUser, endpoint: WebhookEndpoint, *, after: int, upto: int) -> Operation | None:
    """Start the operation that queues what was published while the endpoint was off, if anything was."""
    missed = webhook_replay.ReplayRange(after=after, upto=upto, types=webhook_replay.types_of(endpoint))
    cap = events_settings().webhook_replay_max_events
    count = missed.count(cap)
    if count == 0:
        return None
    return start_operation(
        webhook_replay.KIND,
        label=f"Deliver what “{endpoint.name}” missed while it was off (#{after + 1} to #{upto})"[:300],
        params={"endpoint": endpoint.pk, "missed": True, **missed.params()},
        total=count if count <= cap else None,
        actor=actor,
        url=reverse("events:webhook_replay", args=[endpoint.pk]),
    )


def webhook_rotate_secret(*, actor: AbstractBaseUser, endpoint: WebhookEndpoint, overlap: timedelta) -> str:
    """Give the endpoint a new secret; the current one keeps signing for ``overlap``. Returns the new secret.

    A previous secret still in its overlap is dropped: only the one being replaced matters to receivers.
    """
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        now = timezone.now()
        endpoint.previous_secret = endpoint.secret if overlap > timedelta(0) else ""
        endpoint.previous_secret_expires_at = now + overlap if overlap > timedelta(0) else None
        endpoint.secret = generate_webhook_secret()
        endpoint.secret_created_at = now
        endpoint.save()
        expires = endpoint.previous_secret_expires_at
        emit(
            WEBHOOK_SECRET_ROTATED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            previous_expires_at=expires.isoformat() if expires is not None else None,
        )
    return endpoint.secret


def webhook_test(*, actor: AbstractBaseUser, endpoint: WebhookEndpoint) -> Outcome:
    """Send a signed sample to the endpoint now and record that the actor did, with how it went.

    It runs in the request, outside any transaction: the user waits for the answer, at most
    WEBHOOK_TIMEOUT_SECONDS, and it is the receiver's answer they want to see.
    """
    outcome = send_sample(endpoint)
    emit(
        WEBHOOK_TESTED,
        actor=actor,
        **WebhookEndpoint.stream_of(endpoint.pk),
        endpoint_id=endpoint.pk,
        ok=outcome.ok,
        status_code=outcome.status_code,
        error=outcome.error,
    )
    return outcome


def webhook_replay_start(
    *, actor: AbstractBaseUser, endpoint: WebhookEndpoint, replay: webhook_replay.ReplayRange, count: int
) -> Operation:
    """Start re-delivering ``replay``'s ``count`` events to the endpoint as a background operation."""
    if replay.since is not None or replay.until is not None:
        since = f"{replay.since:%Y-%m-%d %H:%M}" if replay.since else "the start"
        until = f"{replay.until:%Y-%m-%d %H:%M}" if replay.until else "now"
        what = f"recorded from {since} to {until}"
    else:
        what = f"#{replay.after + 1} to #{replay.upto}"
    with transaction.atomic():
        operation = start_operation(
            webhook_replay.KIND,
            label=f"Replay {count} events {what} to “{endpoint.name}”"[:300],
            params={"endpoint": endpoint.pk, **replay.params()},
            total=count,
            actor=actor,
            url=reverse("events:webhook_replay", args=[endpoint.pk]),
        )
        emit(
            WEBHOOK_REPLAY_STARTED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            operation_id=operation.pk,
            after=replay.after,
            upto=replay.upto,
            count=count,
            since=replay.params()["since"],
            until=replay.params()["until"],
        )
    return operation


def webhook_replay_cancelled(operation: Operation, actor: AbstractBaseUser) -> None:
    """The replay kind's ``on_cancel``: core calls it in the transaction that records the cancel."""
    endpoint_id = int(operation.params["endpoint"])
    emit(
        WEBHOOK_REPLAY_CANCELLED,
        actor=actor,
        **WebhookEndpoint.stream_of(endpoint_id),
        endpoint_id=endpoint_id,
        operation_id=operation.pk,
        done=operation.done,
    )


def delivery_resend(*, actor: AbstractBaseUser, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue the same event to the same endpoint again, as a new delivery with the same message id."""
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event=delivery.event,
            event_position=delivery.event_position,
            event_type=delivery.event_type,
            message_id=delivery.message_id,
        )
        emit(
            WEBHOOK_DELIVERY_RESENT,
            actor=actor,
            **WebhookEndpoint.stream_of(delivery.endpoint_id),
            endpoint_id=delivery.endpoint_id,
            delivery_id=again.pk,
            resent_from=delivery.pk,
            position=delivery.event_position,
        )
        dispatch_on_commit()
    return again


def subscription_pause(*, actor: AbstractBaseUser, name: str) -> Checkpoint:
    """Pause subscriber ``name`` (console action): recorded in the log with the actor."""
    subscriptions.get(name)
    with transaction.atomic():
        subscriptions.pause(name)
        checkpoint = Checkpoint.objects.get(name=name)
        emit(SUBSCRIPTION_PAUSED, actor=actor, name=name, position=checkpoint.position)
    return checkpoint


def subscription_resume(*, actor: AbstractBaseUser, name: str) -> Checkpoint:
    """Resume subscriber ``name`` and let it catch up after commit."""
    subscriptions.get(name)
    with transaction.atomic():
        subscriptions.resume(name)
        checkpoint = Checkpoint.objects.get(name=name)
        emit(SUBSCRIPTION_RESUMED, actor=actor, name=name, position=checkpoint.position)
        transaction.on_commit(subscriptions.dispatch)
    return checkpoint


def rollups_rebuild(*, actor: AbstractBaseUser) -> Checkpoint:
    """Drop every rollup and read the log again from its start (after commit, in the catch-up task).

    The subscriber's checkpoint row is locked first, so no batch of the subscriber runs in between: its next
    batch starts from nothing and the first event.
    """
    with transaction.atomic():
        Checkpoint.objects.get_or_create(name=rollups.NAME)
        checkpoint = Checkpoint.objects.select_for_update().get(name=rollups.NAME)
        dropped = Rollup.objects.count()
        rollups.reset()
        checkpoint.tx, checkpoint.position, checkpoint.handled = None, 0, 0
        checkpoint.failures, checkpoint.last_error, checkpoint.retry_at = 0, "", None
        checkpoint.save()
        emit(ROLLUPS_REBUILT, actor=actor, buckets=dropped)
        transaction.on_commit(subscriptions.dispatch)
    return checkpoint


def log_verify(*, actor: AbstractBaseUser | None) -> seal.Verification:
    """Check the log against its seals now, in this process (``manage.py events verify``), and record it."""
    return seal_check.check(actor=actor)


def log_verify_start(*, actor: AbstractBaseUser) -> Operation:
    """Ask for the log to be checked in the background; a check already queued or running is the answer."""
    with transaction.atomic():
        running = Operation.objects.unfinished().filter(kind=seal_check.KIND).order_by("-pk").first()
        if running is not None:
            return running
        operation = start_operation(
            seal_check.KIND,
            label="Verify the sealed log",
            actor=actor,
            url=reverse("events:sealed_log"),
        )
        emit(LOG_VERIFY_STARTED, actor=actor, operation_id=operation.pk)
    return operation


def log_verify_cancelled(operation: Operation, actor: AbstractBaseUser) -> None:
    """The check kind's ``on_cancel``: core calls it in the transaction that records the cancel."""
    emit(LOG_VERIFY_CANCELLED, actor=actor, operation_id=operation.pk, done=operation.done)
