"""The comms app's write functions: resend or cancel messages, reactivate a contact point, set preferences.

Each changes rows inside ``transaction.atomic()``, emits the event naming the actor, and leaves sending to the
delivery task, enqueued after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from console.comms import declarations
from console.comms.classes import CHANNELS
from console.comms.models import (
    DONE_OK,
    ContactPoint,
    Delivery,
    FailureClass,
    Message,
    MessageQuerySet,
    Preference,
    Status,
)
from console.comms.routing import Plan, contacts_for, decide, preferences_for
from console.comms.sending import carry_out, next_delivery
from console.comms.unsubscribe import Link, LinkInvalid, stale
from console.core.models import Operation
from console.core.services import start_operation
from console.events import batch, emit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


# Deliveries that have not reached a provider: waiting, or claimed by a worker that has not handed them over.
STOPPABLE = Q(status__in=(Status.PENDING, Status.QUEUED, Status.DEFERRED)) | Q(
    status=Status.SENDING, handed_at__isnull=True
)


class CancelRefused(ValueError):
    """A cancel that cannot happen: the message went out, or a worker is handing it to the provider now."""


class ResendRefused(ValueError):
    """A resend that would do nothing useful (expired, in flight, already delivered)."""


def resend_refusal(msg: Message, *, force: bool) -> str:
    """Why ``msg`` must not be resent (in flight, already delivered unless forced, expired), or ""."""
    if msg.in_flight:
        return f"message #{msg.pk} is still being sent"
    if msg.status in DONE_OK and not force:
        return f"message #{msg.pk} was already {msg.status}; resend it with force to send again"
    if msg.expired:
        return f"message #{msg.pk} expired at {msg.expires_at:%Y-%m-%d %H:%M} UTC; nothing was sent"
    return ""


def no_channel_refusal(plan: Plan) -> str:
    """Why a resend found nothing to queue: no usable channel, or a send window that opens after expiry."""
    msg = plan.message
    if plan.finish is not None and plan.finish[1] == FailureClass.EXPIRED:
        return f"message #{msg.pk} would wait for its send window and expire first; nothing was sent"
    return f"message #{msg.pk} has no usable channel left (every address is missing or defunct)"


def _resent(msg: Message, *, actor: AbstractBaseUser | None, force: bool, bulk: bool) -> None:
    fields: dict[str, Any] = {"message_id": msg.pk, "message_type": msg.message_type, "forced": force, "bulk": bulk}
    emit(declarations.MESSAGE_RESENT, actor=actor, **Message.stream_of(msg.pk), **fields)


def resend_plans(messages: list[Message], *, force: bool) -> tuple[list[Plan], dict[int, str]]:
    """The resend rule for locked ``messages``: the plans of those to resend, and why each other is not.

    Refusals first (``resend_refusal``), then ``routing.decide`` from now with the preferences and contact
    points of all of them read in one query each; a plan with nothing to queue becomes a refusal.
    """
    now = timezone.now()
    refusals = {msg.pk: resend_refusal(msg, force=force) for msg in messages}
    eligible = [msg for msg in messages if not refusals[msg.pk]]
    preferences, contacts = preferences_for(eligible), contacts_for(eligible)
    plans: list[Plan] = []
    for msg in eligible:
        preference = None if msg.mandatory else preferences.get((msg.recipient, msg.category))
        plan = decide(msg, tried=set(), start=now, preference=preference, contacts=contacts)
        if plan.queued is None:
            refusals[msg.pk] = no_channel_refusal(plan)
        else:
            plans.append(plan)
    return plans, {pk: reason for pk, reason in refusals.items() if reason}


def message_resend(
    *, message: Message, actor: AbstractBaseUser | None, force: bool = False, bulk: bool = False
) -> Delivery:
    """Queue a new delivery of ``message`` on its first usable channel; refuses expired or in-flight ones.

    Nothing is written when it is refused (no channel left included), so a refusal inside a bulk resend's
    transaction leaves no trace but its reason.
    """
    with transaction.atomic():
        msg = Message.objects.select_for_update().get(pk=message.pk)
        plans, refusals = resend_plans([msg], force=force)
        if refusals:
            raise ResendRefused(refusals[msg.pk])
        carry_out(plans)
        _resent(msg, actor=actor, force=force, bulk=bulk)
        queued = plans[0].queued
        assert queued is not None  # a plan without one is a refusal
        return queued


@dataclass(frozen=True)
class BulkResendResult:
    resent: int
    skipped: int
    reasons: list[str]


def resend_each(messages: MessageQuerySet, *, actor: AbstractBaseUser | None, force: bool) -> tuple[int, list[str]]:
    """Resend every message of ``messages`` one by one (``message_resend``): (resent, why others were not)."""
    resent = 0
    reasons: list[str] = []
    for msg in messages.order_by("pk").iterator(chunk_size=500):
        try:
            with transaction.atomic():
                message_resend(message=msg, actor=actor, force=force, bulk=True)
        except ResendRefused as exc:
            reasons.append(str(exc))
        else:
            resent += 1
    return resent, reasons


# What the batched resend reads of a message: what the refusals and ``routing.decide`` look at.
_RESEND_FIELDS = (
    "message_type",
    "category",
    "mandatory",
    "recipient",
    "addresses",
    "channels",
    "status",
    "expires_at",
    "time_zone",
    "held_until",
    "hold_reason",
)


RESEND_BATCH = 500


def resend_batch(ids: list[int], *, actor: AbstractBaseUser | None, force: bool) -> tuple[int, list[str]]:
    """Resend the messages ``ids`` in one transaction with a few queries, by the rules of ``message_resend``.

    The messages are locked (``FOR UPDATE`` on PostgreSQL; SQLite's write lock is taken at BEGIN), so a
    worker moving one on, a cancel or another resend waits for this transaction and then sees it in flight:
    a message never gets two live deliveries. Preferences and contact points are read in one query each,
    the deliveries inserted at once, the messages updated per channel, the events appended in one batch
    and the due deliveries dispatched once, on commit. Returns (resent, why others were not), in id order.
    """
    with transaction.atomic(), batch():
        messages = list(Message.objects.select_for_update().filter(pk__in=ids).only(*_RESEND_FIELDS).order_by("pk"))
        plans, refusals = resend_plans(messages, force=force)
        carry_out(plans)
        for plan in plans:
            _resent(plan.message, actor=actor, force=force, bulk=True)
    return len(plans), [refusals[pk] for pk in sorted(refusals)]


def message_bulk_resend(
    *, messages: MessageQuerySet, actor: AbstractBaseUser, force: bool = False, filters: str = ""
) -> BulkResendResult:
    """Resend every message of ``messages`` that can be; one audit event per message and one for the batch."""
    with transaction.atomic():
        ids = list(messages.order_by("pk").values_list("pk", flat=True))
        resent, reasons = 0, list[str]()
        for start in range(0, len(ids), RESEND_BATCH):
            count, refused = resend_batch(ids[start : start + RESEND_BATCH], actor=actor, force=force)
            resent, reasons = resent + count, reasons + refused
        emit(
            declarations.MESSAGE_BULK_RESEND,
            actor=actor,
            count=resent,
            skipped=len(reasons),
            filters=filters[:500],
            forced=force,
        )
    return BulkResendResult(resent=resent, skipped=len(reasons), reasons=reasons[:20])


def message_cancel(*, message: Message, actor: AbstractBaseUser | None = None, bulk: bool = False) -> int:
    """Cancel a queued, scheduled or retrying message; returns how many deliveries were stopped.

    A delivery a worker claimed but has not yet handed to the provider is cancelled too: the worker's
    ``hand_over`` and this conditional UPDATE race on the same row and the database lets one win. The
    deliveries are changed before the message row, in the order a worker's claim takes them, so the two
    never wait on each other.
    """
    with transaction.atomic():
        cancelled = (
            Delivery.objects.filter(message_id=message.pk)
            .filter(STOPPABLE)
            .update(status=Status.CANCELLED, claim_token="", reason="cancelled before it was sent")
        )
        if not cancelled:
            msg = Message.objects.get(pk=message.pk)
            if msg.status == Status.CANCELLED:
                raise CancelRefused(f"message #{msg.pk} was already cancelled")
            if msg.in_flight:
                raise CancelRefused(f"message #{msg.pk} is being handed to the provider; it can no longer be stopped")
            raise CancelRefused(f"message #{msg.pk} is {msg.get_status_display().lower()}; there is nothing to cancel")
        Message.objects.filter(pk=message.pk).update(status=Status.CANCELLED, failure_class="")
        emit(
            declarations.MESSAGE_CANCELLED,
            actor=actor,
            **Message.stream_of(message.pk),
            message_id=message.pk,
            message_type=message.message_type,
            bulk=bulk,
            deliveries=cancelled,
        )
    message.status = Status.CANCELLED
    return cancelled


@dataclass(frozen=True)
class BulkCancelResult:
    cancelled: int
    refused: list[str]


def message_bulk_cancel(*, messages: MessageQuerySet, actor: AbstractBaseUser) -> BulkCancelResult:
    """Cancel each message that can be; one audit event per message cancelled."""
    cancelled, refused = 0, []
    for msg in messages.order_by("pk").iterator(chunk_size=500):
        try:
            message_cancel(message=msg, actor=actor, bulk=True)
        except CancelRefused as exc:
            refused.append(str(exc))
        else:
            cancelled += 1
    return BulkCancelResult(cancelled=cancelled, refused=refused)


RESEND_OPERATION = "comms.resend"


def message_bulk_resend_start(*, filters: str, actor: AbstractBaseUser, force: bool = False) -> Operation:
    """Record the intent to resend every message matching ``filters`` (the messages page's query string).

    Nothing is counted or written per message here, so the request returns at once however many match; the
    operation's worker counts them and resends them in batches, with progress and cancel.
    """
    with transaction.atomic():
        operation = start_operation(
            RESEND_OPERATION,
            label=f"Resend all messages matching {filters or 'no filter'}"[:300],
            params={"filters": filters, "force": force},
            actor=actor,
            url=reverse("comms:messages") + (f"?{filters}" if filters else ""),
        )
        emit(
            declarations.MESSAGE_BULK_RESEND_STARTED,
            actor=actor,
            operation_id=operation.pk,
            filters=filters[:500],
            forced=force,
        )
    return operation


def audit_resend_cancelled(operation: Operation, actor: AbstractBaseUser) -> None:
    """The operation's ``on_cancel``: the audit event naming who stopped the bulk resend."""
    emit(declarations.MESSAGE_BULK_RESEND_CANCELLED, actor=actor, operation_id=operation.pk, done=operation.done)


def contact_reactivate(*, contact: ContactPoint, actor: AbstractBaseUser) -> ContactPoint:
    with transaction.atomic():
        locked = ContactPoint.objects.select_for_update().get(pk=contact.pk)
        previous_state, previous_reason = locked.reactivate()
        emit(
            declarations.CONTACT_REACTIVATED,
            actor=actor,
            **ContactPoint.stream_of(locked.pk),
            channel=locked.channel,
            address=locked.address,
            previous_state=previous_state,
            previous_reason=previous_reason,
        )
    return locked


def set_preference(
    *,
    recipient: str,
    category: str,
    channel: str,
    allowed: bool,
    actor: AbstractBaseUser | None = None,
    source: str = "api",
) -> Preference:
    """Allow or refuse ``channel`` for ``recipient``'s messages of ``category``; mandatory messages ignore it.

    A change bumps the preference's version (which makes earlier unsubscribe links stale) and is audited,
    naming the staff member or, for the site's own calls and the recipient's link, the ``source``.
    Setting what is already set changes nothing and records nothing.
    """
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if not recipient or len(recipient) > 200 or not category or len(category) > 50:
        raise ValueError("a preference needs a recipient (at most 200 characters) and a category (at most 50)")
    with transaction.atomic():
        pref, _ = Preference.objects.select_for_update().get_or_create(
            recipient=recipient, category=category, defaults={"channels": list(CHANNELS)}
        )
        if pref.allows(channel) == allowed:
            return pref
        chosen = set(pref.channels) | {channel} if allowed else set(pref.channels) - {channel}
        pref.channels = [c for c in CHANNELS if c in chosen]
        pref.version += 1
        pref.save()
        if not allowed:
            stop_opted_out(recipient=recipient, category=category, channels={channel})
        emit(
            declarations.PREFERENCE_CHANGED,
            actor=actor,
            recipient=recipient,
            category=category,
            channel=channel,
            allowed=allowed,
            source=source,
        )
    return pref


def stop_opted_out(*, recipient: str, category: str, channels: set[str]) -> int:
    """Skip the recipient's not-yet-sent deliveries on channels they just turned off; returns how many.

    A scheduled message, one held for quiet hours or one waiting for a retry honours the change: each
    delivery is skipped with the same conditional UPDATE a cancel uses (so one already handed to a provider
    goes out), and the message moves on to its next allowed channel from the time it was due.
    """
    waiting = (
        Delivery.objects.filter(
            message__recipient=recipient, message__category=category, message__mandatory=False, channel__in=channels
        )
        .filter(STOPPABLE)
        .select_related("message")
    )
    skipped = 0
    now = timezone.now()
    for delivery in waiting:
        changed = (
            Delivery.objects.filter(pk=delivery.pk)
            .filter(STOPPABLE)
            .update(
                status=Status.SKIPPED,
                failure_class=FailureClass.PREFERENCE,
                claim_token="",
                reason=f"the recipient turned {delivery.channel} off for {category} messages",
            )
        )
        if changed:
            skipped += 1
            msg = delivery.message
            tried = set(msg.deliveries.values_list("channel", flat=True))
            start = max(delivery.next_attempt_at, now)
            next_delivery(msg, tried=tried, start=start, failure_class=FailureClass.PREFERENCE)
    return skipped


def unsubscribe(*, link: Link) -> Preference:
    """Turn every channel of the link's category off, as the recipient asked by following it.

    The link must name the preference as it still is: one issued before any change (including the change
    this link already made) raises ``LinkInvalid`` and changes nothing. Audited with ``source="link"``.
    """
    with transaction.atomic():
        pref, _ = Preference.objects.select_for_update().get_or_create(
            recipient=link.recipient, category=link.category, defaults={"channels": list(CHANNELS)}
        )
        problem = stale(link, pref)
        if problem:
            raise LinkInvalid(problem)
        turned_off = list(pref.channels)
        pref.channels = []
        pref.version += 1
        pref.save()
        stop_opted_out(recipient=link.recipient, category=link.category, channels=set(turned_off))
        for channel in turned_off:
            emit(
                declarations.PREFERENCE_CHANGED,
                recipient=link.recipient,
                category=link.category,
                channel=channel,
                allowed=False,
                source="link",
            )
    return pref
