"""The write side of comms: send, deliver, retry, fall back, alert, resend, reactivate.

Every function here changes rows inside ``transaction.atomic()``, emits the event that names what happened
(and who did it, when a person did), and dispatches work only once the transaction has committed.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import random
import smtplib
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, make_msgid
from django.core.mail.backends.smtp import EmailBackend as SMTPBackend
from django.core.validators import validate_email
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from console.comms import events
from console.comms.classes import MessageClass, MessageError, lookup
from console.comms.conf import alert_recipients, comms_settings
from console.comms.models import (
    ACTIVE_STATUSES,
    Alert,
    Attempt,
    ContactPoint,
    ContactState,
    Delivery,
    FailureClass,
    Message,
    MessageQuerySet,
    Preference,
    Status,
    as_json,
)
from console.comms.outcomes import INFRASTRUCTURE, POLICY, RECIPIENT, SENT, TEMPORARY, Outcome, classify_smtp
from console.comms.providers import Outgoing, mailer, provider_for
from console.core.inputs import whole_number
from console.events import batch, emit
from console.events.context import capture

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from django.core.mail.backends.base import BaseEmailBackend

log = structlog.get_logger("console.comms")

_PHONE_CHARS = set("+0123456789")


class InvalidAddress(ValueError):
    """An address that cannot be sent to, rejected at ``send()``."""


class ResendRefused(ValueError):
    """A resend that would do nothing useful (expired, in flight, already delivered)."""


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


def _dispatch(delivery_ids: list[int], run_after: datetime | None = None) -> None:
    from console.comms.tasks import deliver

    size = comms_settings().batch_size
    for start in range(0, len(delivery_ids), size):
        chunk = delivery_ids[start : start + size]
        task = deliver
        if run_after is not None:
            if not task.get_backend().supports_defer:
                continue  # the tick's due-retries duty picks it up
            task = task.using(run_after=run_after)
        task.enqueue(delivery_ids=chunk, context=capture())


class _Flush:
    """The one on-commit callback of a transaction: enqueues every delivery id collected in it."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        _dispatch(self.ids)


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


def _plan(cls: type[MessageClass], recipient: Recipient, mandatory: bool) -> list[str]:
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
            "channels": _plan(cls, recipient, cls.mandatory),
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
            events.MESSAGE_QUEUED,
            actor=actor,
            stream_type="message",
            stream_id=str(msg.pk),
            message_id=msg.pk,
            message_type=msg.message_type,
            recipient=msg.recipient,
            mandatory=msg.mandatory,
        )
        if not msg.channels:
            _finish(msg, Status.SKIPPED, FailureClass.PREFERENCE)
        else:
            _next_delivery(msg, tried=set(), start=start)
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


def _next_delivery(
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
            if not lookup_fallback(msg):
                break
            continue
        delivery = Delivery.objects.create(
            message=msg, channel=channel, address=address, status=Status.QUEUED, next_attempt_at=start
        )
        Message.objects.filter(pk=msg.pk).update(status=Status.QUEUED, channel=channel, failure_class="")
        msg.status, msg.channel, msg.failure_class = Status.QUEUED, channel, ""
        if start > timezone.now():
            transaction.on_commit(functools.partial(_dispatch, [delivery.pk], run_after=start))
        else:
            dispatch_on_commit(delivery.pk)
        return delivery
    _finish(msg, Status.FAILED, failure_class)
    return None


def lookup_fallback(msg: Message) -> bool:
    cls = lookup(msg.message_type)
    return True if cls is None else cls.fallback


def _finish(msg: Message, status: str, failure_class: str) -> None:
    Message.objects.filter(pk=msg.pk).update(status=status, failure_class=failure_class)
    msg.status, msg.failure_class = status, failure_class
    if status == Status.FAILED and msg.mandatory:
        _mandatory_failed(msg)


def _mandatory_failed(msg: Message) -> None:
    emit(
        events.MESSAGE_MANDATORY_FAILED,
        stream_type="message",
        stream_id=str(msg.pk),
        message_id=msg.pk,
        message_type=msg.message_type,
        recipient=msg.recipient,
        failure_class=msg.failure_class,
    )
    text = f"Mandatory message #{msg.pk} ({msg.message_type}) to {msg.recipient} could not be delivered"
    Alert.objects.create(kind="mandatory_failed", message=msg, text=text[:300])
    message_id = msg.pk
    transaction.on_commit(lambda: _alert_staff(text, message_id))
    cls = lookup(msg.message_type)
    if cls is not None:
        transaction.on_commit(lambda: cls.on_mandatory_failure(Message.objects.get(pk=message_id)))


def _alert_staff(text: str, message_id: int | None) -> None:
    """Mail staff directly through the alert mailer: an alert must not queue behind the mail it is about."""
    recipients = alert_recipients()
    if not recipients:
        log.warning("comms.alert_unaddressed", text=text)
        return
    body = f"{text}.\n\nSee the message in the console: /messages/{message_id}/\n" if message_id else text
    email = EmailMultiAlternatives(
        subject=f"[console] {text}"[:200],
        body=body,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=mailer(comms_settings().alert_mailer),
    )
    try:
        email.send()
    except (smtplib.SMTPException, OSError) as exc:
        log.error("comms.alert_mail_failed", text=text, error=str(exc))


# --- claim and deliver ---------------------------------------------------------------------------------


def claim(delivery_ids: list[int] | None, *, now: datetime | None = None, limit: int | None = None) -> list[Delivery]:
    """Take due deliveries for this worker: a conditional UPDATE only one worker can win per row.

    On PostgreSQL the candidate rows are first locked with ``FOR UPDATE SKIP LOCKED``, so concurrent
    workers take different rows instead of queueing on the same ones.
    """
    now = now or timezone.now()
    if delivery_ids is None and limit is None:
        limit = comms_settings().batch_size
    token = uuid.uuid4().hex
    with transaction.atomic():
        candidates = Delivery.objects.claimable(now)
        if delivery_ids is not None:
            candidates = candidates.filter(pk__in=delivery_ids)
        if connection.vendor == "postgresql":
            locked = candidates.select_for_update(skip_locked=True).order_by("next_attempt_at", "pk")
            ids = list(locked.values_list("pk", flat=True)[: limit or comms_settings().batch_size])
            candidates = Delivery.objects.claimable(now).filter(pk__in=ids)
        elif limit is not None:
            ids = list(candidates.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
            candidates = Delivery.objects.claimable(now).filter(pk__in=ids)
        candidates.update(status=Status.SENDING, claimed_at=now, claim_token=token, attempts=F("attempts") + 1)
        claimed = list(Delivery.objects.filter(claim_token=token, status=Status.SENDING).select_related("message"))
        Message.objects.filter(pk__in={d.message_id for d in claimed}).update(status=Status.SENDING)
    return claimed


class EmailSession:
    """One mailer connection reused for a batch; reopened after the server closes or drops it."""

    def __init__(self, alias: str) -> None:
        self.backend: BaseEmailBackend = mailer(alias)
        self.opened = False

    def _reset(self) -> None:
        with contextlib.suppress(smtplib.SMTPException, OSError):
            self.backend.close()
        if hasattr(self.backend, "connection"):
            self.backend.connection = None
        self.opened = False

    def close(self) -> None:
        if self.opened:
            self._reset()

    def send(self, delivery: Delivery) -> Outcome:
        msg = delivery.message
        domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "localhost"
        message_id = make_msgid(idstring=f"console.{msg.pk}.{delivery.pk}.{delivery.attempts}", domain=domain)
        headers = {"Message-ID": message_id, "X-Console-Message-ID": str(msg.pk)}
        fast = (
            type(self.backend) is SMTPBackend and delivery.address.isascii() and settings.DEFAULT_FROM_EMAIL.isascii()
        )
        email: EmailMultiAlternatives | None = None
        if not fast:
            email = EmailMultiAlternatives(
                subject=msg.subject,
                body=msg.text_body,
                from_email=settings.DEFAULT_FROM_EMAIL,
                to=[delivery.address],
                headers=headers,
                connection=self.backend,
            )
            if msg.html_body:
                email.attach_alternative(msg.html_body, "text/html")
            # django-anymail sends this as provider metadata, so its tracking events name our message.
            email.metadata = {"console_message_id": str(msg.pk), "console_delivery_id": str(delivery.pk)}  # type: ignore[attr-defined]
        try:
            if not self.opened:
                self.backend.open()
                self.opened = True
            if email is None:
                # Django's SMTP backend with plain addresses: hand smtplib bytes composed directly, which
                # costs a fraction of building an email.message object per message.
                data = compose_mime(
                    from_email=settings.DEFAULT_FROM_EMAIL,
                    to=delivery.address,
                    subject=msg.subject,
                    text=msg.text_body,
                    html=msg.html_body,
                    headers=headers,
                )
                self.backend.connection.sendmail(settings.DEFAULT_FROM_EMAIL, [delivery.address], data)  # type: ignore[attr-defined]
                sent = 1
            else:
                sent = self.backend.send_messages([email])
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()))
            if code == 421:
                self._reset()
            return classify_smtp(code, reply)
        except smtplib.SMTPResponseException as exc:
            self._reset()
            return classify_smtp(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            self._reset()
            return Outcome(TEMPORARY, error=f"{type(exc).__name__}: {exc}"[:1000])
        if not sent:
            return Outcome(TEMPORARY, error="the mail backend reported the message not sent")
        status = getattr(email, "anymail_status", None)
        provider_id = getattr(status, "message_id", None) or message_id
        return Outcome(SENT, provider_id=str(provider_id)[:200])


def compose_mime(*, from_email: str, to: str, subject: str, text: str, html: str, headers: dict[str, str]) -> bytes:
    """A MIME message (text, plus HTML as an alternative when there is one) as SMTP-ready bytes."""

    def body(content: str, subtype: str) -> str:
        encoded = base64.encodebytes(content.encode()).decode().replace("\n", "\r\n")
        return f"Content-Type: text/{subtype}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}"

    subject_header = subject if subject.isascii() else Header(subject, "utf-8").encode()
    lines = [
        f"From: {from_email}",
        f"To: {to}",
        f"Subject: {subject_header}",
        f"Date: {formatdate(usegmt=True)}",
        "MIME-Version: 1.0",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    if html:
        boundary = f"=_console_{uuid.uuid4().hex}"
        lines.append(f'Content-Type: multipart/alternative; boundary="{boundary}"')
        parts = f"--{boundary}\r\n{body(text, 'plain')}--{boundary}\r\n{body(html, 'html')}--{boundary}--\r\n"
        return ("\r\n".join(lines) + "\r\n\r\n" + parts).encode()
    return ("\r\n".join(lines) + "\r\n" + body(text, "plain")).encode()


FLUSH_EVERY = 50


def deliver_batch(delivery_ids: list[int] | None = None, *, limit: int | None = None) -> dict[str, int]:
    """Claim the given (or any due) deliveries, send them, record each outcome. Returns counts per outcome.

    A success is made durable before the next message is sent (one UPDATE of the delivery), so a worker
    that dies mid-batch resends at most the message whose transaction was cut. Its attempt row, the
    message's status and its ``message.sent`` event are written in bulk every ``FLUSH_EVERY`` successes;
    if the worker dies before that, the reconciler writes them from the delivery row.
    """
    claimed = claim(delivery_ids, limit=limit)
    counts: dict[str, int] = defaultdict(int)
    soft = set(
        ContactPoint.objects.filter(address__in={d.address for d in claimed})
        .exclude(soft_failures=0, state=ContactState.ACTIVE)
        .values_list("channel", "address")
    )
    sent: list[Delivery] = []

    def handle(delivery: Delivery, outcome: Outcome) -> None:
        counts[outcome.kind] += 1
        if outcome.kind == SENT:
            _mark_sent(delivery, outcome)
            sent.append(delivery)
            if len(sent) >= FLUSH_EVERY:
                record_sent(sent, soft=soft)
                sent.clear()
        else:
            record_outcome(delivery, outcome, clear_soft_failures=(delivery.channel, delivery.address) in soft)

    by_mailer: dict[str, list[Delivery]] = defaultdict(list)
    for delivery in claimed:
        if delivery.channel == "email":
            by_mailer[delivery.message.mailer].append(delivery)
        else:
            handle(delivery, _send_provider(delivery))
    for alias, group in by_mailer.items():
        session = EmailSession(alias)
        try:
            for delivery in group:
                handle(delivery, session.send(delivery))
        finally:
            session.close()
    record_sent(sent, soft=soft)
    return dict(counts)


def _mark_sent(delivery: Delivery, outcome: Outcome) -> None:
    """The durable fact that ``delivery`` went out, written before anything else is sent."""
    now = timezone.now()
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Status.SENT, sent_at=now, provider_id=outcome.provider_id, claim_token=""
    )
    delivery.status, delivery.sent_at, delivery.provider_id = Status.SENT, now, outcome.provider_id


def record_sent(deliveries: list[Delivery], *, soft: set[tuple[str, str]] | None = None) -> None:
    """Attempts, message statuses and ``message.sent`` events of deliveries already marked sent, in bulk."""
    if not deliveries:
        return
    with transaction.atomic(), batch():
        Attempt.objects.bulk_create(
            Attempt(
                delivery=d,
                at=d.sent_at or timezone.now(),
                channel=d.channel,
                address=d.address,
                outcome=SENT,
                provider_id=d.provider_id,
            )
            for d in deliveries
        )
        by_channel: dict[str, list[int]] = defaultdict(list)
        for d in deliveries:
            by_channel[d.channel].append(d.message_id)
        for channel, message_ids in by_channel.items():
            Message.objects.filter(pk__in=message_ids).update(status=Status.SENT, channel=channel, failure_class="")
        clear = [d for d in deliveries if soft is None or (d.channel, d.address) in soft]
        for d in clear:
            ContactPoint.objects.filter(channel=d.channel, address=d.address).exclude(
                state=ContactState.DEFUNCT
            ).update(soft_failures=0, state=ContactState.ACTIVE)
        for d in deliveries:
            emit(
                events.MESSAGE_SENT,
                stream_type="message",
                stream_id=str(d.message_id),
                message_id=d.message_id,
                message_type=d.message.message_type,
                channel=d.channel,
                attempts=d.attempts,
                provider_id=d.provider_id,
            )


def _send_provider(delivery: Delivery) -> Outcome:
    msg = delivery.message
    text = msg.sms_text if delivery.channel == "sms" else msg.push_body
    outgoing = Outgoing(
        channel=delivery.channel,
        to=delivery.address,
        text=text,
        title=msg.push_title if delivery.channel == "push" else "",
        message_id=msg.pk,
        delivery_id=delivery.pk,
    )
    try:
        return provider_for(delivery.channel).send(outgoing)
    except Exception as exc:  # an adapter bug must not leave the delivery claimed forever
        log.exception("comms.provider_error", channel=delivery.channel)
        return Outcome(TEMPORARY, error=f"{type(exc).__name__}: {exc}"[:1000])


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After is a floor, never ignored."""
    conf = comms_settings()
    ceiling = min(float(conf.backoff_cap_seconds), float(conf.backoff_base_seconds) * 2 ** max(0, attempt - 1))
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after or 0.0)


def record_outcome(delivery: Delivery, outcome: Outcome, *, clear_soft_failures: bool = True) -> None:
    """Write the attempt and move the delivery (and its message) on according to the outcome.

    A success clears the contact point's soft-failure count; a batch that already knows the address has
    none passes ``clear_soft_failures=False`` to save the query.
    """
    now = timezone.now()
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            at=now,
            channel=delivery.channel,
            address=delivery.address,
            outcome=outcome.kind,
            code=outcome.code,
            enhanced_code=outcome.enhanced_code,
            provider_id=outcome.provider_id,
            error=outcome.error,
        )
        msg = delivery.message
        base: dict[str, Any] = {"message_id": msg.pk, "message_type": msg.message_type, "channel": delivery.channel}
        stream: dict[str, Any] = {"stream_type": "message", "stream_id": str(msg.pk)}
        if outcome.kind == SENT:
            Delivery.objects.filter(pk=delivery.pk).update(
                status=Status.SENT, sent_at=now, provider_id=outcome.provider_id, claim_token=""
            )
            Message.objects.filter(pk=msg.pk).update(status=Status.SENT, channel=delivery.channel, failure_class="")
            if clear_soft_failures:
                ContactPoint.objects.filter(channel=delivery.channel, address=delivery.address).exclude(
                    state=ContactState.DEFUNCT
                ).update(soft_failures=0, state=ContactState.ACTIVE)
            emit(events.MESSAGE_SENT, **stream, **base, attempts=delivery.attempts, provider_id=outcome.provider_id)
            return
        if outcome.kind == TEMPORARY:
            _soft_failure(delivery, outcome, now)
            retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, outcome.retry_after))
            if delivery.attempts < comms_settings().max_attempts and retry_at < msg.expires_at:
                Delivery.objects.filter(pk=delivery.pk).update(
                    status=Status.DEFERRED, next_attempt_at=retry_at, reason=outcome.error[:300], claim_token=""
                )
                Message.objects.filter(pk=msg.pk).update(status=Status.DEFERRED)
                emit(
                    events.MESSAGE_DEFERRED,
                    **stream,
                    **base,
                    attempts=delivery.attempts,
                    retry_at=retry_at.isoformat(),
                    code=outcome.code,
                    enhanced_code=outcome.enhanced_code,
                    error=outcome.error[:300],
                )
                delivery_id = delivery.pk
                transaction.on_commit(lambda: _dispatch([delivery_id], run_after=retry_at))
                return
            why = "expiry reached" if retry_at >= msg.expires_at else f"{delivery.attempts} attempts"
            _fail(delivery, FailureClass.TEMPORARY, outcome, reason=f"temporary failures until {why}: {outcome.error}")
            return
        if outcome.kind == RECIPIENT:
            _mark_defunct(delivery, outcome, now)
            _fail(delivery, FailureClass.RECIPIENT, outcome, reason=outcome.error)
            return
        if outcome.kind == POLICY:
            emit(
                events.MESSAGE_POLICY_REJECTED,
                **stream,
                **base,
                code=outcome.code,
                enhanced_code=outcome.enhanced_code,
                error=outcome.error[:300],
            )
            text = (
                f"Policy rejection ({outcome.enhanced_code or outcome.code}) of message #{msg.pk} on {delivery.channel}"
            )
            Alert.objects.create(kind="policy", message=msg, text=text[:300])
            message_id = msg.pk
            transaction.on_commit(lambda: _alert_staff(text, message_id))
            _fail(delivery, FailureClass.POLICY, outcome, reason=outcome.error)
            return
        assert outcome.kind == INFRASTRUCTURE, outcome.kind
        _fail(delivery, FailureClass.INFRASTRUCTURE, outcome, reason=outcome.error)


def _soft_failure(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    contact, _ = ContactPoint.objects.get_or_create(channel=delivery.channel, address=delivery.address)
    ContactPoint.objects.filter(pk=contact.pk).update(soft_failures=F("soft_failures") + 1, last_failure_at=now)
    contact.refresh_from_db()
    threshold = comms_settings().soft_fail_after
    if contact.state == ContactState.ACTIVE and contact.soft_failures >= threshold:
        contact.state = ContactState.SOFT_FAILING
        contact.reason = f"{contact.soft_failures} temporary failures in a row"
        contact.evidence = {"last_error": outcome.error[:300], "message_id": delivery.message_id}
        contact.save(update_fields=["state", "reason", "evidence", "updated_at"])
        emit(
            events.CONTACT_SOFT_FAILING,
            channel=contact.channel,
            address=contact.address,
            failures=contact.soft_failures,
        )


def _mark_defunct(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    contact, _ = ContactPoint.objects.get_or_create(channel=delivery.channel, address=delivery.address)
    contact.state = ContactState.DEFUNCT
    contact.reason = (outcome.error or "permanent recipient failure")[:200]
    contact.evidence = {
        "code": outcome.code,
        "enhanced_code": outcome.enhanced_code,
        "message_id": delivery.message_id,
        "delivery_id": delivery.pk,
        "at": now.isoformat(),
    }
    contact.last_failure_at = now
    contact.save()
    emit(
        events.CONTACT_DEFUNCT,
        stream_type="contact",
        stream_id=str(contact.pk),
        channel=contact.channel,
        address=contact.address,
        reason=contact.reason,
        message_id=delivery.message_id,
    )


def _fail(delivery: Delivery, failure_class: str, outcome: Outcome | None, *, reason: str) -> None:
    msg = delivery.message
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Status.FAILED, failure_class=failure_class, reason=reason[:300], claim_token=""
    )
    tried = set(msg.deliveries.values_list("channel", flat=True))
    can_fall_back = lookup_fallback(msg) and failure_class != FailureClass.EXPIRED
    emit(
        events.MESSAGE_FAILED,
        stream_type="message",
        stream_id=str(msg.pk),
        message_id=msg.pk,
        message_type=msg.message_type,
        channel=delivery.channel,
        failure_class=failure_class,
        code=outcome.code if outcome else None,
        enhanced_code=outcome.enhanced_code if outcome else "",
        error=(outcome.error if outcome else reason)[:300],
        fallback=can_fall_back and any(c not in tried for c in msg.channels),
    )
    if can_fall_back:
        _next_delivery(msg, tried=tried, start=timezone.now(), failure_class=failure_class)
        return
    _finish(msg, Status.FAILED, failure_class)


# --- provider reports ----------------------------------------------------------------------------------

# Later states never go back to earlier ones when reports arrive out of order.
_RANK = {Status.SENT: 1, Status.DEFERRED: 1, Status.DELIVERED: 2, Status.FAILED: 3}


def provider_event(
    *,
    source: str,
    event_id: str,
    event_type: str,
    provider_id: str = "",
    message_id: int | str | None = None,
    delivery_id: int | str | None = None,
    description: str = "",
    code: str = "",
    payload: dict[str, Any] | None = None,
) -> str:
    """Apply one provider report (delivered, bounced, rejected, complained, deferred) exactly once."""
    delivery = _find_delivery(provider_id=provider_id, message_id=message_id, delivery_id=delivery_id)
    with transaction.atomic():
        try:
            with transaction.atomic():
                from console.comms.models import ProviderEvent

                ProviderEvent.objects.create(
                    source=source,
                    event_id=event_id[:200],
                    event_type=event_type[:30],
                    delivery=delivery,
                    payload=as_json(payload or {}),
                )
        except IntegrityError:
            return "duplicate"
        if delivery is None:
            return "unmatched"
        delivery = Delivery.objects.select_for_update().select_related("message").get(pk=delivery.pk)
        if event_type == "delivered":
            if _RANK.get(Status(delivery.status), 0) >= _RANK[Status.DELIVERED]:
                return "stale"
            now = timezone.now()
            Delivery.objects.filter(pk=delivery.pk).update(status=Status.DELIVERED, delivered_at=now)
            Message.objects.filter(pk=delivery.message_id, status=Status.SENT).update(status=Status.DELIVERED)
            emit(
                events.MESSAGE_DELIVERED,
                stream_type="message",
                stream_id=str(delivery.message_id),
                message_id=delivery.message_id,
                message_type=delivery.message.message_type,
                channel=delivery.channel,
                source=source,
            )
            return "delivered"
        if event_type in ("bounced", "rejected", "complained"):
            if delivery.status == Status.FAILED:
                return "stale"
            smtp_code = whole_number(code[:3])
            outcome = (
                classify_smtp(smtp_code, description)
                if smtp_code is not None
                else Outcome(RECIPIENT, error=description or event_type)
            )
            if event_type == "complained":
                outcome = Outcome(RECIPIENT, error=f"complaint: {description}".strip())
            Attempt.objects.create(
                delivery=delivery,
                channel=delivery.channel,
                address=delivery.address,
                outcome=outcome.kind,
                code=outcome.code,
                enhanced_code=outcome.enhanced_code,
                error=f"{source} reported {event_type}: {description}"[:1000],
            )
            if outcome.kind == RECIPIENT:
                _mark_defunct(delivery, outcome, timezone.now())
                failure = FailureClass.COMPLAINED if event_type == "complained" else FailureClass.RECIPIENT
            elif outcome.kind == POLICY:
                failure = FailureClass.POLICY
            elif outcome.kind == TEMPORARY:
                failure = FailureClass.TEMPORARY
            else:
                failure = FailureClass.INFRASTRUCTURE
            _fail(delivery, failure, outcome, reason=f"{source} reported {event_type}: {description}")
            return event_type
        if event_type == "deferred":
            Attempt.objects.create(
                delivery=delivery,
                channel=delivery.channel,
                address=delivery.address,
                outcome=TEMPORARY,
                error=f"{source} reported deferred: {description}"[:1000],
            )
            return "deferred"
    return "ignored"


def _as_pk(value: int | str | None) -> int | None:
    return whole_number(str(value)) if value is not None else None


def _find_delivery(*, provider_id: str, message_id: int | str | None, delivery_id: int | str | None) -> Delivery | None:
    delivery_pk, message_pk = _as_pk(delivery_id), _as_pk(message_id)
    if delivery_pk is not None:
        found = Delivery.objects.filter(pk=delivery_pk).first()
        if found is not None:
            return found
    if provider_id:
        found = Delivery.objects.filter(provider_id=provider_id).order_by("-pk").first()
        if found is not None:
            return found
    if message_pk is not None:
        return (
            Delivery.objects.filter(message_id=message_pk, status__in=(Status.SENT, Status.DELIVERED))
            .order_by("-pk")
            .first()
        )
    return None


# --- staff actions -------------------------------------------------------------------------------------


def message_resend(*, message: Message, actor: AbstractBaseUser, force: bool = False, bulk: bool = False) -> Delivery:
    """Queue a new delivery of ``message`` on its first usable channel; refuses expired or in-flight ones."""
    with transaction.atomic():
        msg = Message.objects.select_for_update().get(pk=message.pk)
        if msg.status in ACTIVE_STATUSES:
            raise ResendRefused(f"message #{msg.pk} is still being sent")
        if msg.status in (Status.SENT, Status.DELIVERED) and not force:
            raise ResendRefused(f"message #{msg.pk} was already {msg.status}; resend it with force to send again")
        if msg.expired:
            raise ResendRefused(f"message #{msg.pk} expired at {msg.expires_at:%Y-%m-%d %H:%M} UTC; nothing was sent")
        emit(
            events.MESSAGE_RESENT,
            actor=actor,
            stream_type="message",
            stream_id=str(msg.pk),
            message_id=msg.pk,
            message_type=msg.message_type,
            forced=force,
            bulk=bulk,
        )
        delivery = _next_delivery(msg, tried=set(), start=timezone.now())
        if delivery is None:
            raise ResendRefused(f"message #{msg.pk} has no usable channel left (every address is missing or defunct)")
        return delivery


@dataclass(frozen=True)
class BulkResendResult:
    resent: int
    skipped: int
    reasons: list[str]


def message_bulk_resend(
    *, messages: MessageQuerySet, actor: AbstractBaseUser, force: bool = False, filters: str = ""
) -> BulkResendResult:
    """Resend every message of ``messages`` that can be; one audit event per message and one for the batch."""
    resent = 0
    reasons: list[str] = []
    with transaction.atomic():
        for msg in messages.order_by("pk").iterator(chunk_size=500):
            try:
                with transaction.atomic():
                    message_resend(message=msg, actor=actor, force=force, bulk=True)
            except ResendRefused as exc:
                reasons.append(str(exc))
            else:
                resent += 1
        emit(
            events.MESSAGE_BULK_RESEND,
            actor=actor,
            count=resent,
            skipped=len(reasons),
            filters=filters[:500],
            forced=force,
        )
    return BulkResendResult(resent=resent, skipped=len(reasons), reasons=reasons[:20])


def contact_reactivate(*, contact: ContactPoint, actor: AbstractBaseUser) -> ContactPoint:
    with transaction.atomic():
        locked = ContactPoint.objects.select_for_update().get(pk=contact.pk)
        previous_state, previous_reason = locked.state, locked.reason
        locked.state = ContactState.ACTIVE
        locked.reason = ""
        locked.soft_failures = 0
        locked.evidence = {**locked.evidence, "reactivated_from": previous_state, "previous_reason": previous_reason}
        locked.save()
        emit(
            events.CONTACT_REACTIVATED,
            actor=actor,
            stream_type="contact",
            stream_id=str(locked.pk),
            channel=locked.channel,
            address=locked.address,
            previous_state=previous_state,
            previous_reason=previous_reason,
        )
    return locked


# --- maintenance duties --------------------------------------------------------------------------------


def reconcile() -> str:
    """Re-dispatch deliveries committed but never picked up, and release claims of workers that died."""
    conf = comms_settings()
    now = timezone.now()
    stale_claims = Delivery.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - timedelta(seconds=conf.sending_lease_seconds)
    )
    released = stale_claims.update(status=Status.QUEUED, claim_token="", next_attempt_at=now)
    stuck = list(
        Delivery.objects.filter(
            status=Status.QUEUED, next_attempt_at__lte=now - timedelta(seconds=conf.reconcile_after_seconds)
        ).values_list("pk", flat=True)[:5000]
    )
    if released:
        stuck.extend(
            Delivery.objects.filter(status=Status.QUEUED, next_attempt_at=now).values_list("pk", flat=True)[:5000]
        )
    ids = sorted(set(stuck))
    _dispatch(ids)
    # Sent by a worker that died before writing the attempt, the message status and the event.
    unrecorded = list(
        Delivery.objects.filter(
            status=Status.SENT,
            message__status=Status.SENDING,
            sent_at__lt=now - timedelta(seconds=conf.reconcile_after_seconds),
        )
        .exclude(attempt_set__outcome=SENT)
        .select_related("message")[:5000]
    )
    record_sent(unrecorded)
    summary = f"{len(ids)} re-dispatched, {released} stale claim(s) released"
    return summary + (f", {len(unrecorded)} sent delivery(ies) recorded" if unrecorded else "")


def retry_due() -> str:
    """Dispatch deferred deliveries whose retry time has come (backends without deferred tasks need this)."""
    ids = list(
        Delivery.objects.filter(status=Status.DEFERRED, next_attempt_at__lte=timezone.now()).values_list(
            "pk", flat=True
        )[:5000]
    )
    _dispatch(ids)
    return f"{len(ids)} retry(ies) dispatched"


def expire() -> str:
    """Stop deliveries of messages past their expiry; the message fails as expired (mandatory ones alert)."""
    now = timezone.now()
    expired = list(
        Delivery.objects.filter(status__in=(Status.QUEUED, Status.DEFERRED), message__expires_at__lte=now)
        .select_related("message")
        .order_by("pk")[:1000]
    )
    for delivery in expired:
        with transaction.atomic():
            changed = Delivery.objects.filter(pk=delivery.pk, status__in=(Status.QUEUED, Status.DEFERRED)).update(
                status=Status.SKIPPED, failure_class=FailureClass.EXPIRED, reason="expired before it could be sent"
            )
            if changed:
                _finish(delivery.message, Status.FAILED, FailureClass.EXPIRED)
    return f"{len(expired)} expired"
