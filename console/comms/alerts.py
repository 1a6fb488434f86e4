"""Telling staff: an alert row for the console's banner and a mail to the alert recipients, after commit.

Raised when a mandatory message cannot be delivered (the message class's hook runs too) and when a provider
rejects a message for policy reasons (our reputation or configuration, not the recipient's fault).
"""

from __future__ import annotations

import smtplib

import structlog
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction

from console.comms import declarations
from console.comms.classes import lookup
from console.comms.conf import alert_recipients, comms_settings
from console.comms.models import Alert, Delivery, Message
from console.comms.outcomes import Outcome
from console.comms.providers import mailer
from console.events import emit

log = structlog.get_logger("console.comms")


def mandatory_failed(msg: Message) -> None:
    emit(
        declarations.MESSAGE_MANDATORY_FAILED,
        **Message.stream_of(msg.pk),
        message_id=msg.pk,
        message_type=msg.message_type,
        recipient=msg.recipient,
        failure_class=msg.failure_class,
    )
    text = f"Mandatory message #{msg.pk} ({msg.message_type}) to {msg.recipient} could not be delivered"
    Alert.objects.create(kind="mandatory_failed", message=msg, text=text[:300])
    message_id = msg.pk
    transaction.on_commit(lambda: alert_staff(text, message_id))
    cls = lookup(msg.message_type)
    if cls is not None:
        transaction.on_commit(lambda: cls.on_mandatory_failure(Message.objects.get(pk=message_id)))


def policy_rejected(delivery: Delivery, outcome: Outcome) -> None:
    """A provider refused the message for policy reasons: staff look at it; the recipient is not blamed."""
    msg = delivery.message
    emit(
        declarations.MESSAGE_POLICY_REJECTED,
        **Message.stream_of(msg.pk),
        message_id=msg.pk,
        message_type=msg.message_type,
        channel=delivery.channel,
        code=outcome.code,
        enhanced_code=outcome.enhanced_code,
        error=outcome.error[:300],
    )
    text = f"Policy rejection ({outcome.enhanced_code or outcome.code}) of message #{msg.pk} on {delivery.channel}"
    Alert.objects.create(kind="policy", message=msg, text=text[:300])
    message_id = msg.pk
    transaction.on_commit(lambda: alert_staff(text, message_id))


def alert_staff(text: str, message_id: int | None) -> None:
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
