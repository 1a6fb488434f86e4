"""The comms app's write functions for staff: resend one or many messages, reactivate a contact point.

Each changes rows inside ``transaction.atomic()``, emits the event naming the actor, and leaves sending to the
delivery task, enqueued after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from console.comms import declarations
from console.comms.models import ContactPoint, Delivery, Message, MessageQuerySet, Status
from console.comms.sending import next_delivery
from console.core.models import Operation
from console.core.services import start_operation
from console.events import emit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


class ResendRefused(ValueError):
    """A resend that would do nothing useful (expired, in flight, already delivered)."""


def message_resend(
    *, message: Message, actor: AbstractBaseUser | None, force: bool = False, bulk: bool = False
) -> Delivery:
    """Queue a new delivery of ``message`` on its first usable channel; refuses expired or in-flight ones."""
    with transaction.atomic():
        msg = Message.objects.select_for_update().get(pk=message.pk)
        if msg.in_flight:
            raise ResendRefused(f"message #{msg.pk} is still being sent")
        if msg.status in (Status.SENT, Status.DELIVERED) and not force:
            raise ResendRefused(f"message #{msg.pk} was already {msg.status}; resend it with force to send again")
        if msg.expired:
            raise ResendRefused(f"message #{msg.pk} expired at {msg.expires_at:%Y-%m-%d %H:%M} UTC; nothing was sent")
        delivery = next_delivery(msg, tried=set(), start=timezone.now())
        if delivery is None:
            raise ResendRefused(f"message #{msg.pk} has no usable channel left (every address is missing or defunct)")
        # After the refusals: a bulk resend collects its events in one batch, which a refusal does not undo.
        emit(
            declarations.MESSAGE_RESENT,
            actor=actor,
            **Message.stream_of(msg.pk),
            message_id=msg.pk,
            message_type=msg.message_type,
            forced=force,
            bulk=bulk,
        )
        return delivery


@dataclass(frozen=True)
class BulkResendResult:
    resent: int
    skipped: int
    reasons: list[str]


def resend_each(messages: MessageQuerySet, *, actor: AbstractBaseUser | None, force: bool) -> tuple[int, list[str]]:
    """Resend every message of ``messages`` that can be, in the caller's transaction: (resent, why others not)."""
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


def message_bulk_resend(
    *, messages: MessageQuerySet, actor: AbstractBaseUser, force: bool = False, filters: str = ""
) -> BulkResendResult:
    """Resend every message of ``messages`` that can be; one audit event per message and one for the batch."""
    with transaction.atomic():
        resent, reasons = resend_each(messages, actor=actor, force=force)
        emit(
            declarations.MESSAGE_BULK_RESEND,
            actor=actor,
            count=resent,
            skipped=len(reasons),
            filters=filters[:500],
            forced=force,
        )
    return BulkResendResult(resent=resent, skipped=len(reasons), reasons=reasons[:20])


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
