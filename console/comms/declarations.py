"""The comms app's event types: the message lifecycle, contact health and staff actions."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from console.events import Metric, declare
from console.events.rollups import Tally, count

CHANNELS = ("email", "sms", "push")
_FIELDS = {"message_id", "message_type", "channel"}

MESSAGE_QUEUED = declare(
    "message.queued",
    description="A message was accepted for sending.",
    required={"message_id", "message_type", "recipient"},
    optional={"channel", "mandatory"},
    metrics=[Metric("console_messages_queued_total", "counter", "Messages accepted for sending.")],
)
MESSAGE_SENT = declare(
    "message.sent",
    description="A channel accepted a message.",
    required=_FIELDS | {"attempts"},
    optional={"provider_id"},
    metrics=[
        Metric(
            "console_messages_sent_total",
            "counter",
            "Messages accepted by a channel.",
            labels=("channel",),
            allowed={"channel": CHANNELS},
        )
    ],
)
MESSAGE_DELIVERED = declare(
    "message.delivered",
    description="A provider reported the message delivered.",
    required=_FIELDS,
    optional={"source"},
)
MESSAGE_DEFERRED = declare(
    "message.deferred",
    description="A temporary failure; the delivery will be retried.",
    required=_FIELDS | {"attempts", "retry_at"},
    # hold_reason: the retry waits for the message's send window (quiet hours) until retry_at.
    optional={"code", "enhanced_code", "error", "hold_reason"},
    level="warning",
)
MESSAGE_FAILED = declare(
    "message.failed",
    description="A delivery failed for good on one channel.",
    required=_FIELDS | {"failure_class"},
    optional={"code", "enhanced_code", "error", "fallback"},
    level="warning",
    metrics=[
        Metric(
            "console_messages_failed_total",
            "counter",
            "Deliveries that failed for good.",
            labels=("channel",),
            allowed={"channel": CHANNELS},
        )
    ],
)
MESSAGE_MANDATORY_FAILED = declare(
    "message.mandatory_failed",
    description="A mandatory message could not be delivered on any allowed channel.",
    required={"message_id", "message_type", "recipient"},
    optional={"failure_class"},
    level="error",
    audit=True,
)
MESSAGE_POLICY_REJECTED = declare(
    "message.policy_rejected",
    description="A provider refused a message for policy reasons (our reputation or configuration).",
    required=_FIELDS | {"code", "enhanced_code"},
    optional={"error"},
    level="error",
)
MESSAGE_RESENT = declare(
    "message.resent",
    description="Staff resent a message.",
    required={"message_id", "message_type"},
    optional={"forced", "bulk"},
    audit=True,
)
MESSAGE_BULK_RESEND = declare(
    "message.bulk_resend",
    description="Staff resent a set of messages.",
    required={"count", "skipped"},
    optional={"filters", "forced"},
    audit=True,
)
MESSAGE_CANCELLED = declare(
    "message.cancelled",
    description="Staff or the site cancelled a message before it was sent.",
    required={"message_id", "message_type"},
    optional={"bulk", "deliveries"},
    audit=True,
)
PREFERENCE_CHANGED = declare(
    "preference.changed",
    description="A recipient's preference for a message category and channel changed.",
    required={"recipient", "category", "channel", "allowed"},
    optional={"source"},
    audit=True,
)
CONTACT_DEFUNCT = declare(
    "contact.defunct",
    description="A contact point was marked defunct after a permanent recipient failure.",
    required={"channel", "address", "reason"},
    optional={"message_id"},
    level="warning",
)
CONTACT_SOFT_FAILING = declare(
    "contact.soft_failing",
    description="A contact point failed temporarily several times in a row.",
    required={"channel", "address", "failures"},
    level="warning",
)
CONTACT_REACTIVATED = declare(
    "contact.reactivated",
    description="Staff reactivated a contact point.",
    required={"channel", "address"},
    optional={"previous_state", "previous_reason"},
    audit=True,
)
PROVIDER_EVENT_REJECTED = declare(
    "comms.inbound_rejected",
    description="A provider event did not verify and was ignored.",
    required={"reason"},
    level="warning",
    persist=False,
)
PROVIDER_CIRCUIT_OPENED = declare(
    "provider.circuit_opened",
    description="A provider failed repeatedly; its circuit breaker opened and its channel fails over.",
    required={"provider", "failures"},
    optional={"error"},
    level="warning",
)
PROVIDER_CIRCUIT_CLOSED = declare(
    "provider.circuit_closed",
    description="A probe through an open circuit succeeded; the provider is used again.",
    required={"provider"},
)
MESSAGE_BULK_RESEND_STARTED = declare(
    "message.bulk_resend_started",
    description="Staff started resending every message matching a filter, as a background operation.",
    required={"operation_id"},
    optional={"filters", "forced"},
    audit=True,
)
MESSAGE_BULK_RESEND_CANCELLED = declare(
    "message.bulk_resend_cancelled",
    description="Staff cancelled a bulk resend; the messages already queued stay queued.",
    required={"operation_id", "done"},
    audit=True,
)


# What the charts count (console.events.rollups): messages by outcome, and sent or failed by class and channel.
OUTCOMES = "messages.outcome"
FAILURES_BY_CLASS = "messages.failure_class"
SENT_BY_TYPE, SENT_BY_CHANNEL = "messages.sent_type", "messages.sent_channel"
FAILED_BY_TYPE, FAILED_BY_CHANNEL = "messages.failed_type", "messages.failed_channel"
OUTCOME_SERIES = {"sent": (SENT_BY_TYPE, SENT_BY_CHANNEL), "failed": (FAILED_BY_TYPE, FAILED_BY_CHANNEL)}


def outcome_tallies(outcome: str) -> Callable[[Mapping[str, Any]], Iterator[Tally]]:
    by_type, by_channel = OUTCOME_SERIES.get(outcome, ("", ""))

    def tallies(data: Mapping[str, Any]) -> Iterator[Tally]:
        yield OUTCOMES, outcome, None
        if by_type:
            yield by_type, str(data.get("message_type", "")), None
            yield by_channel, str(data.get("channel", "")), None
        if outcome == "failed":
            yield FAILURES_BY_CLASS, str(data.get("failure_class", "")), None

    return tallies


for _outcome, _declared in [
    ("queued", MESSAGE_QUEUED),
    ("sent", MESSAGE_SENT),
    ("delivered", MESSAGE_DELIVERED),
    ("deferred", MESSAGE_DEFERRED),
    ("failed", MESSAGE_FAILED),
]:
    count(_declared.name, outcome_tallies(_outcome))
