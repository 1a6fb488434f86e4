"""Sending: message classes become outbox rows, written in the caller's transaction and dispatched on commit.

``send()`` renders the message and checks its addresses (so a bad template or address raises in the caller),
writes the message and its first delivery, and enqueues the delivery after the transaction commits. A later
channel (a fallback) is queued the same way by ``next_delivery()``.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from console.comms import alerts, declarations
from console.comms.classes import MessageClass, MessageError, lookup
from console.comms.conf import comms_settings
from console.comms.models import (
    Delivery,
    FailureClass,
    Message,
    Preference,
    Status,
    as_json,
)
from console.comms.routing import Plan, contacts_for, decide, preference_skip, preferences_for
from console.comms.unsubscribe import url_for
from console.core.coalesce import NOW, Window
from console.events import emit
from console.events.context import capture, defers, enqueue

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

# The task that sends deliveries, named rather than imported: it runs the delivery code, which queues
# fallbacks through this module.
DELIVER = "console.comms.tasks.deliver"
# The task that sends whatever deliveries are due (a coalesced dispatch), named for the same reason.
DELIVER_DUE = "console.comms.tasks.sweep"


class InvalidAddress(ValueError):
    """An address that cannot be sent to, rejected at ``send()``."""


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: a stable key (a user id, an email) and the addresses we hold per channel."""

    key: str
    email: str = ""
    phone: str = ""
    push_token: str = ""
    # IANA name ("Europe/Paris"), for send windows; empty means the site's TIME_ZONE.
    time_zone: str = ""

    def addresses(self) -> dict[str, str]:
        found = {"email": self.email, "sms": self.phone, "push": self.push_token}
        return {channel: address for channel, address in found.items() if address}


def as_recipient(to: Recipient | str) -> Recipient:
    recipient = Recipient(key=to, email=to) if isinstance(to, str) else to
    if not recipient.key:
        raise InvalidAddress("a recipient needs a key")
    if recipient.email:
        try:
            validate_email(recipient.email)
        except ValidationError:
            raise InvalidAddress(f"{recipient.email!r} is not a valid email address") from None
    if recipient.phone:
        digits = recipient.phone[1:] if recipient.phone.startswith("+") else ""
        if not (digits.isascii() and digits.isdigit() and 8 <= len(digits) <= 15):
            raise InvalidAddress(f"{recipient.phone!r} is not a phone number in E.164 form (+447700900123)")
    if recipient.push_token and (len(recipient.push_token) > 254 or not recipient.push_token.isprintable()):
        raise InvalidAddress("the push token is not a printable string of at most 254 characters")
    if recipient.time_zone:
        try:
            ZoneInfo(recipient.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidAddress(f"{recipient.time_zone!r} is not a time zone name such as Europe/Paris") from None
    return recipient


# --- dispatch on commit -------------------------------------------------------------------------------


def dispatch(delivery_ids: list[int], run_after: datetime | None = None) -> None:
    """Enqueue the deliveries in batches; deferred ones a backend cannot defer are left to the retry duty."""
    size = comms_settings().batch_size
    for start in range(0, len(delivery_ids), size):
        enqueue(DELIVER, delivery_ids=delivery_ids[start : start + size], context=capture(), run_after=run_after)


window = Window()


def dispatch_soon(delivery_ids: list[int]) -> None:
    """Enqueue one transaction's deliveries, coalesced with those of other transactions close in time.

    A site that sends one message per request would otherwise enqueue one task, and open one connection,
    per message. The first transaction after a quiet spell enqueues a sweep at once; the later ones enqueue
    nothing but one sweep per window, deferred to the window's end (``console.core.coalesce``). A sweep sends
    every delivery due, including those committed while it runs (see ``delivery.deliver_due``). A
    transaction with a full batch of its own, and backends that cannot defer (inline), are dispatched as
    they are.
    """
    conf = comms_settings()
    if not conf.dispatch_window_seconds or len(delivery_ids) >= conf.batch_size or not sweeps_queue():
        dispatch(delivery_ids)
        return
    delay = window.claim(conf.dispatch_window_seconds)
    if delay == NOW:
        sweep_now()
    elif delay is not None:
        enqueue(DELIVER_DUE, context=capture(), run_after=timezone.now() + timedelta(seconds=delay))


def sweep_now() -> None:
    """Enqueue a sweep of due deliveries now (a sweep that found a full batch hands on the rest)."""
    enqueue(DELIVER_DUE, context=capture())


def sweeps_queue() -> bool:
    """Whether a sweep enqueued now waits for a worker; an inline backend would run it in the caller."""
    return defers(DELIVER_DUE)


class _Flush:
    """The one on-commit callback of a transaction: enqueues every delivery id collected in it."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        dispatch_soon(self.ids)


def dispatch_on_commit(delivery_id: int) -> None:
    """Enqueue ``delivery_id`` when the current transaction commits, one task per batch, not per row.

    Ids dispatched in one transaction are collected by a single on-commit callback and enqueued in
    batches, so a request or a seed that sends a thousand messages enqueues ten tasks, not a thousand.
    """
    conn = connection
    current: _Flush | None = getattr(conn, "_comms_flush", None)
    pending = (
        current is not None
        and not current.ran
        and conn.in_atomic_block
        and any(entry[1] is current for entry in conn.run_on_commit)
    )
    if current is None or not pending:
        current = _Flush()
        conn._comms_flush = current  # type: ignore[attr-defined]  # one collector per connection and transaction
        current.ids.append(delivery_id)
        transaction.on_commit(current)
        return
    current.ids.append(delivery_id)


# --- send --------------------------------------------------------------------------------------------


def plan(cls: type[MessageClass], recipient: Recipient, mandatory: bool) -> tuple[list[str], list[str]]:
    """The class's channels the recipient allows, in the class's order, and those they opted out of."""
    channels = list(cls.channels)
    if mandatory:
        return channels, []
    pref = Preference.objects.filter(recipient=recipient.key, category=cls.category).first()
    if pref is None:
        return channels, []
    return [c for c in channels if pref.allows(c)], [c for c in channels if not pref.allows(c)]


def message_send(
    message: MessageClass,
    *,
    to: Recipient | str,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
    actor: AbstractBaseUser | None = None,
) -> Message:
    """Write the message and its first delivery in the caller's transaction; dispatch on commit.

    Rendering and address checks happen here, so a bad template, a missing context value or an invalid
    address raises in the caller. The same ``idempotency_key`` returns the message it first created.
    ``send_at`` schedules it (a time already past means now); it expires ``ttl`` after that, or at
    ``expires_at``, which must then be later than ``send_at``.
    """
    cls = type(message)
    if lookup(cls.key) is not cls:
        raise MessageError(f"{cls.__name__} is not registered: decorate it with @register")
    recipient = as_recipient(to)
    unsubscribe_url = "" if cls.mandatory else url_for(recipient.key, cls.category)
    rendered = message.render(unsubscribe_url=unsubscribe_url)
    if any(t is not None and timezone.is_naive(t) for t in (send_at, expires_at)):
        raise MessageError(f"{cls.__name__}: send_at and expires_at must be timezone-aware datetimes")
    now = timezone.now()
    start = max(send_at, now) if send_at else now
    expires = expires_at or start + cls.ttl
    if expires <= start:
        raise MessageError(
            f"{cls.__name__}: send_at {start.astimezone(UTC):%Y-%m-%d %H:%M:%S} is not before the message's "
            f"expiry {expires.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC; it would never be sent"
        )
    with transaction.atomic():
        if idempotency_key:
            existing = Message.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        allowed, opted_out = plan(cls, recipient, cls.mandatory)
        fields: dict[str, Any] = {
            "message_type": cls.key,
            "category": cls.category,
            "mandatory": cls.mandatory,
            "recipient": recipient.key,
            "addresses": recipient.addresses(),
            "channels": allowed,
            "context": as_json(message.context),
            "subject": rendered.subject[:300],
            "text_body": rendered.text,
            "html_body": rendered.html,
            "sms_text": rendered.sms,
            "push_title": rendered.push_title[:200],
            "push_body": rendered.push_body,
            "mailer": cls.mailer,
            "unsubscribe_url": unsubscribe_url,
            "idempotency_key": idempotency_key or "",
            "created_by": actor,
            "created_at": now,
            "send_at": start,
            "expires_at": expires,
            "time_zone": recipient.time_zone,
        }
        msg = Message(**fields)
        skips = [preference_skip(msg, channel) for channel in opted_out]
        # The first delivery is planned before the message is written, so its row is inserted as it will stay
        # (no UPDATE after it); preferences were just applied to ``allowed``.
        first = (
            decide(msg, tried=set(), start=start, preference=None, contacts=contacts_for([msg])) if allowed else None
        )
        if first is not None and first.queued is not None:
            msg.status, msg.channel = Status.QUEUED, first.queued.channel
            msg.held_until, msg.hold_reason = first.held_until, first.hold_reason
        try:
            # A savepoint only where the insert may hit the idempotency key's constraint: two fewer round trips.
            with transaction.atomic(savepoint=bool(idempotency_key)):
                msg.save(force_insert=True)
        except IntegrityError:
            if idempotency_key:
                return Message.objects.get(idempotency_key=idempotency_key)
            raise
        emit(
            declarations.MESSAGE_QUEUED,
            actor=actor,
            **Message.stream_of(msg.pk),
            message_id=msg.pk,
            message_type=msg.message_type,
            recipient=msg.recipient,
            mandatory=msg.mandatory,
        )
        if first is None:
            Delivery.objects.bulk_create(skips)
            finish(msg, Status.SKIPPED, FailureClass.PREFERENCE)
        else:
            first.deliveries[:0] = skips  # the opted-out channels first, as the class orders them
            carry_out([first], written=True)
    return msg


def send(
    message: MessageClass,
    *,
    to: Recipient | str,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> Message:
    """The public entry point: ``send(OrderConfirmation(...), to=recipient, idempotency_key=...)``."""
    return message_send(message, to=to, idempotency_key=idempotency_key, send_at=send_at, expires_at=expires_at)


def next_delivery(
    msg: Message,
    *,
    tried: set[str],
    start: datetime,
    failure_class: str = FailureClass.NO_CONTACT,
    check_preferences: bool = True,
) -> Delivery | None:
    """Queue the next usable channel of the plan; record why each unusable one was skipped.

    Preferences are checked again (a fallback, a resend or an opt-out comes after ``send()`` planned the
    channels), unless the caller has just planned them. A delivery due outside the send window waits for it
    (see ``routing.decide``). When no channel is left the message fails with ``failure_class`` (why the last
    real delivery failed), or is skipped when that was a preference.
    """
    preference = None
    if check_preferences and not msg.mandatory:
        preference = preferences_for([msg]).get((msg.recipient, msg.category))
    contacts = contacts_for([msg], tried)
    plan = decide(msg, tried=tried, start=start, preference=preference, contacts=contacts, failure_class=failure_class)
    carry_out([plan])
    return plan.queued


def carry_out(plans: list[Plan], *, written: bool = False) -> None:
    """Write what ``decide`` planned, for one message or a whole batch, and dispatch the queued deliveries on commit.

    The deliveries of every plan are inserted at once, the queued messages are updated in one UPDATE per
    (channel, hold) group, and the due deliveries join the transaction's one dispatch; held ones are
    enqueued to run when their window opens. A plan with no channel left finishes its message. ``written``:
    the messages were inserted with their queued status and channel already (``send()``), no UPDATE needed.
    """
    Delivery.objects.bulk_create([d for plan in plans for d in plan.deliveries])
    groups: dict[tuple[str, datetime | None, str], list[int]] = defaultdict(list)
    later: dict[datetime, list[int]] = defaultdict(list)
    now = timezone.now()
    for plan in plans:
        msg, queued = plan.message, plan.queued
        if queued is None:
            if plan.finish is not None:
                finish(msg, *plan.finish)
            continue
        groups[(queued.channel, plan.held_until, plan.hold_reason)].append(msg.pk)
        msg.status, msg.channel, msg.failure_class = Status.QUEUED, queued.channel, ""
        msg.held_until, msg.hold_reason = plan.held_until, plan.hold_reason
        if queued.next_attempt_at > now:
            later[queued.next_attempt_at].append(queued.pk)
        else:
            dispatch_on_commit(queued.pk)
    for (channel, held_until, hold_reason), message_ids in groups.items():
        if not written:
            Message.objects.filter(pk__in=message_ids).update(
                status=Status.QUEUED, channel=channel, failure_class="", held_until=held_until, hold_reason=hold_reason
            )
    for run_after, delivery_ids in later.items():
        transaction.on_commit(functools.partial(dispatch, delivery_ids, run_after=run_after))


def finish(msg: Message, status: str, failure_class: str) -> None:
    Message.objects.filter(pk=msg.pk).update(status=status, failure_class=failure_class)
    msg.status, msg.failure_class = status, failure_class
    if status == Status.FAILED and msg.mandatory:
        alerts.mandatory_failed(msg)
