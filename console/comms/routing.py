"""The rule that picks a message's next delivery: the channel, or why each channel was skipped, and when it may go.

``decide()`` reads nothing from the database: the caller loads the recipient's preference and the contact
points first (``preferences_for`` and ``contacts_for`` load them for many messages in two queries), so the
one-message path (a fallback, a resend) and the batched bulk resend apply the same rule to the same facts.
The send window (quiet hours) applies to every delivery, not only a message's first: a retry, a fallback
and a staff resend due outside it wait for it, unless its window opens only after the message expires.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import Q

from console.comms.classes import MessageClass, lookup
from console.comms.models import ContactPoint, ContactState, Delivery, FailureClass, Message, Preference, Status
from console.comms.windows import next_opening, window_of

# How a hold reason begins; the message page recognises a delivery waiting for its window by it.
QUIET_HOURS = "quiet hours:"


def hold(cls: type[MessageClass] | None, time_zone: str, start: datetime) -> tuple[datetime | None, str]:
    """Until when a delivery due at ``start`` waits for its send window, and why; (None, "") when it need not."""
    window = window_of(cls) if cls is not None else None
    if window is None:
        return None, ""
    zone_name = time_zone or settings.TIME_ZONE
    opens = next_opening(window, start, ZoneInfo(zone_name))
    if opens is None:
        return None, ""
    return opens, f"{QUIET_HOURS} {window.describe(zone_name)}"[:200]


def hold_message(msg: Message, start: datetime) -> tuple[datetime | None, str]:
    """``hold()`` for a message already written: its class's window in its recipient's time zone."""
    return hold(lookup(msg.message_type), msg.time_zone, start)


def outside_life(msg: Message, opens: datetime) -> str:
    """Why a delivery that would wait until ``opens`` is not queued: the window opens after the message expires."""
    return (
        f"its send window opens at {opens.astimezone(UTC):%Y-%m-%d %H:%M} UTC, after the message expires at "
        f"{msg.expires_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    )


def may_fall_back(msg: Message) -> bool:
    cls = lookup(msg.message_type)
    return True if cls is None else cls.fallback


def _skipped(msg: Message, channel: str, address: str, failure_class: str, reason: str) -> Delivery:
    return Delivery(
        message=msg, channel=channel, address=address, status=Status.SKIPPED, failure_class=failure_class, reason=reason
    )


def preference_skip(msg: Message, channel: str) -> Delivery:
    """A skipped delivery (not saved), so the message page shows which channel a preference removed."""
    reason = f"the recipient turned {channel} off for {msg.category} messages"
    return _skipped(msg, channel, msg.addresses.get(channel, ""), FailureClass.PREFERENCE, reason)


@dataclass
class Plan:
    """What the rule decided for one message; nothing of it is written yet."""

    message: Message
    # Unsaved rows in the order they happen: skipped channels, then the queued one if there is one.
    deliveries: list[Delivery] = field(default_factory=list)
    queued: Delivery | None = None
    held_until: datetime | None = None
    hold_reason: str = ""
    # When no channel is left: the message's final (status, failure class).
    finish: tuple[str, str] | None = None


def decide(
    msg: Message,
    *,
    tried: set[str],
    start: datetime,
    preference: Preference | None,
    contacts: dict[tuple[str, str], ContactPoint],
    failure_class: str = FailureClass.NO_CONTACT,
) -> Plan:
    """The next usable channel of the message's plan, and a skipped row for each unusable one before it.

    ``preference`` is None when it must not be checked (mandatory messages, or channels just planned by
    ``send()``). A usable channel due outside the send window waits for the window; if the window opens
    only after the message expires, the message expires (``failure_class`` expired) rather than go out
    outside it. When no channel is left the message fails with ``failure_class`` (why the last real
    delivery failed), or is skipped when that was a preference.
    """
    plan = Plan(message=msg)
    for channel in msg.channels:
        if channel in tried:
            continue
        tried.add(channel)
        if preference is not None and not preference.allows(channel):
            plan.deliveries.append(preference_skip(msg, channel))
            continue
        address = msg.addresses.get(channel, "")
        contact = contacts.get((channel, address)) if address else None
        reason = ""
        if not address:
            reason = f"no {channel} address on file"
        elif contact is not None and contact.state == ContactState.DEFUNCT:
            reason = f"address defunct: {contact.reason}"
        if reason:
            plan.deliveries.append(_skipped(msg, channel, address, FailureClass.NO_CONTACT, reason))
            if not may_fall_back(msg):
                break
            continue
        held_until, hold_reason = hold_message(msg, start)
        if held_until is not None and held_until >= msg.expires_at:
            why = f"{hold_reason}; {outside_life(msg, held_until)}"[:300]
            plan.deliveries.append(_skipped(msg, channel, address, FailureClass.EXPIRED, why))
            plan.finish = (Status.FAILED, FailureClass.EXPIRED)
            return plan
        plan.held_until, plan.hold_reason = held_until, hold_reason
        plan.queued = Delivery(
            message=msg,
            channel=channel,
            address=address,
            status=Status.QUEUED,
            next_attempt_at=held_until or start,
            reason=f"{hold_reason}; waits until it opens"[:300] if held_until else "",
        )
        plan.deliveries.append(plan.queued)
        return plan
    plan.finish = (Status.SKIPPED if failure_class == FailureClass.PREFERENCE else Status.FAILED, failure_class)
    return plan


def preferences_for(messages: Iterable[Message]) -> dict[tuple[str, str], Preference]:
    """The preferences of the non-mandatory ``messages``' recipients, by (recipient, category), in one query."""
    wanted = {(m.recipient, m.category) for m in messages if not m.mandatory}
    if not wanted:
        return {}
    found = Preference.objects.filter(recipient__in={r for r, _ in wanted}, category__in={c for _, c in wanted}).only(
        "recipient", "category", "channels"
    )
    return {(p.recipient, p.category): p for p in found if (p.recipient, p.category) in wanted}


def contacts_for(messages: Iterable[Message], tried: set[str] | None = None) -> dict[tuple[str, str], ContactPoint]:
    """The contact points of the ``messages``' addresses (channels in ``tried`` left out), in one query."""
    wanted = {
        (channel, address)
        for m in messages
        for channel, address in m.addresses.items()
        if address and channel in m.channels and not (tried and channel in tried)
    }
    if not wanted:
        return {}
    by_channel: dict[str, set[str]] = {}
    for channel, address in wanted:
        by_channel.setdefault(channel, set()).add(address)
    query = Q()
    for channel, addresses in by_channel.items():
        query |= Q(channel=channel, address__in=addresses)
    found = ContactPoint.objects.filter(query).only("channel", "address", "state", "reason")
    return {(c.channel, c.address): c for c in found}
