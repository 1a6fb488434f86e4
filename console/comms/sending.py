"""Sending: message classes become outbox rows, written in the caller's transaction and dispatched on commit.

``send()`` renders the message and checks its addresses (so a bad template or address raises in the caller),
writes the message and its first delivery, and enqueues the delivery after the transaction commits. A later
channel (a fallback) is queued the same way by ``next_delivery()``.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.tasks import Task
from django.utils import timezone
from django.utils.module_loading import import_string

from console.comms import alerts, declarations
from console.comms.classes import MessageClass, MessageError, lookup
from console.comms.conf import comms_settings
from console.comms.models import (
    ContactPoint,
    ContactState,
    Delivery,
    FailureClass,
    Message,
    Preference,
    Status,
    as_json,
)
from console.events import emit
from console.events.context import capture, enqueue

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
    return recipient


# --- dispatch on commit -------------------------------------------------------------------------------


def dispatch(delivery_ids: list[int], run_after: datetime | None = None) -> None:
    """Enqueue the deliveries in batches; deferred ones a backend cannot defer are left to the retry duty."""
    size = comms_settings().batch_size
    for start in range(0, len(delivery_ids), size):
        enqueue(DELIVER, delivery_ids=delivery_ids[start : start + size], context=capture(), run_after=run_after)


_window_lock = threading.Lock()
_window_until = 0.0
_window_swept = False


def dispatch_soon(delivery_ids: list[int]) -> None:
    """Enqueue one transaction's deliveries, coalesced with those of other transactions close in time.

    A site that sends one message per request would otherwise enqueue one task, and open one connection,
    per message. The first transaction of a window is enqueued at once; the later ones of the same window
    enqueue nothing but one sweep, deferred to the window's end, that sends every delivery then due (and
    hands on to another sweep when it finds a full batch). A transaction with a full batch of its own, and
    backends that cannot defer (inline), are dispatched as they are.
    """
    global _window_until, _window_swept
    conf = comms_settings()
    sweep: Task[..., Any] = import_string(DELIVER_DUE)
    if (
        not conf.dispatch_window_seconds
        or len(delivery_ids) >= conf.batch_size
        or not sweep.get_backend().supports_defer
    ):
        dispatch(delivery_ids)
        return
    now = time.monotonic()
    with _window_lock:
        if now >= _window_until:
            _window_until, _window_swept = now + conf.dispatch_window_seconds, False
            delay = None
        elif not _window_swept:
            _window_swept = True
            delay = _window_until - now
        else:
            return
    if delay is None:
        dispatch(delivery_ids)
    else:
        enqueue(DELIVER_DUE, context=capture(), run_after=timezone.now() + timedelta(seconds=delay))


def sweep_now() -> None:
    """Enqueue a sweep of due deliveries now (a sweep that found a full batch hands on the rest)."""
    enqueue(DELIVER_DUE, context=capture())


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


def plan(cls: type[MessageClass], recipient: Recipient, mandatory: bool) -> list[str]:
    channels = list(cls.channels)
    if not mandatory:
        pref = Preference.objects.filter(recipient=recipient.key, category=cls.category).first()
        if pref is not None:
            chosen = [c for c in pref.channels if c in channels]
            channels = chosen
    return channels


def message_send(
    message: MessageClass,
    *,
    to: Recipient | str,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
    actor: AbstractBaseUser | None = None,
) -> Message:
    """Write the message and its first delivery in the caller's transaction; dispatch on commit.

    Rendering and address checks happen here, so a bad template, a missing context value or an invalid
    address raises in the caller. The same ``idempotency_key`` returns the message it first created.
    """
    cls = type(message)
    if lookup(cls.key) is not cls:
        raise MessageError(f"{cls.__name__} is not registered: decorate it with @register")
    recipient = as_recipient(to)
    rendered = message.render()
    now = timezone.now()
    start = send_at or now
    with transaction.atomic():
        if idempotency_key:
            existing = Message.objects.filter(idempotency_key=idempotency_key).first()
            if existing is not None:
                return existing
        fields: dict[str, Any] = {
            "message_type": cls.key,
            "category": cls.category,
            "mandatory": cls.mandatory,
            "recipient": recipient.key,
            "addresses": recipient.addresses(),
            "channels": plan(cls, recipient, cls.mandatory),
            "context": as_json(message.context),
            "subject": rendered.subject[:300],
            "text_body": rendered.text,
            "html_body": rendered.html,
            "sms_text": rendered.sms,
            "push_title": rendered.push_title[:200],
            "push_body": rendered.push_body,
            "mailer": cls.mailer,
            "idempotency_key": idempotency_key or "",
            "created_by": actor,
            "created_at": now,
            "send_at": start,
            "expires_at": start + cls.ttl,
        }
        try:
            with transaction.atomic():
                msg = Message.objects.create(**fields)
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
        if not msg.channels:
            finish(msg, Status.SKIPPED, FailureClass.PREFERENCE)
        else:
            next_delivery(msg, tried=set(), start=start)
    return msg


def send(
    message: MessageClass,
    *,
    to: Recipient | str,
    idempotency_key: str | None = None,
    send_at: datetime | None = None,
) -> Message:
    """The public entry point: ``send(OrderConfirmation(...), to=recipient, idempotency_key=...)``."""
    return message_send(message, to=to, idempotency_key=idempotency_key, send_at=send_at)


def next_delivery(
    msg: Message, *, tried: set[str], start: datetime, failure_class: str = FailureClass.NO_CONTACT
) -> Delivery | None:
    """Queue the next usable channel of the plan; record why each unusable one was skipped.

    When none is left the message fails with ``failure_class`` (why the last real delivery failed).
    """
    for channel in msg.channels:
        if channel in tried:
            continue
        tried.add(channel)
        address = msg.addresses.get(channel, "")
        contact = ContactPoint.objects.filter(channel=channel, address=address).first() if address else None
        reason = ""
        if not address:
            reason = f"no {channel} address on file"
        elif contact is not None and contact.state == ContactState.DEFUNCT:
            reason = f"address defunct: {contact.reason}"
        if reason:
            Delivery.objects.create(
                message=msg,
                channel=channel,
                address=address,
                status=Status.SKIPPED,
                failure_class=FailureClass.NO_CONTACT,
                reason=reason,
            )
            if not may_fall_back(msg):
                break
            continue
        delivery = Delivery.objects.create(
            message=msg, channel=channel, address=address, status=Status.QUEUED, next_attempt_at=start
        )
        Message.objects.filter(pk=msg.pk).update(status=Status.QUEUED, channel=channel, failure_class="")
        msg.status, msg.channel, msg.failure_class = Status.QUEUED, channel, ""
        if start > timezone.now():
            transaction.on_commit(functools.partial(dispatch, [delivery.pk], run_after=start))
        else:
            dispatch_on_commit(delivery.pk)
        return delivery
    finish(msg, Status.FAILED, failure_class)
    return None


def may_fall_back(msg: Message) -> bool:
    cls = lookup(msg.message_type)
    return True if cls is None else cls.fallback


def finish(msg: Message, status: str, failure_class: str) -> None:
    Message.objects.filter(pk=msg.pk).update(status=status, failure_class=failure_class)
    msg.status, msg.failure_class = status, failure_class
    if status == Status.FAILED and msg.mandatory:
        alerts.mandatory_failed(msg)
