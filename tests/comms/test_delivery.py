"""Delivery policy against a real SMTP server scripted per recipient (done-when 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from console.comms.classes import lookup
from console.comms.maintenance import retry_due
from console.comms.models import Alert, Attempt, ContactPoint, ContactState, FailureClass, Message, Status
from console.comms.sending import Recipient, send
from console.events.models import Event
from tests.comms.smtp import SMTPServer

pytestmark = pytest.mark.usefixtures("inline_tasks")

Capture = Callable[..., Any]


def order(**overrides: Any) -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls(**{**cls.sample_context, **overrides})


def test_it_retries_a_temporary_failure_and_then_delivers(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("ada@example.com", "450 4.2.0 Mailbox busy, try later", "450 4.2.0 Still busy")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u1", email="ada@example.com"))
    message.refresh_from_db()
    assert message.status == Status.DEFERRED
    with django_capture_on_commit_callbacks(execute=True):
        retry_due()
    with django_capture_on_commit_callbacks(execute=True):
        retry_due()
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert [a.code for a in Attempt.objects.filter(delivery__message=message)] == [450, 450, None]
    assert len(smtp.handler.to("ada@example.com")) == 1
    accepted = smtp.handler.to("ada@example.com")[0]
    assert accepted["X-Console-Message-ID"] == str(message.pk)
    assert Event.objects.filter(type="message.deferred", stream_id=str(message.pk)).count() == 2
    assert Event.objects.filter(type="message.sent", stream_id=str(message.pk)).exists()


def test_a_421_is_temporary_and_the_connection_is_reopened(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("first@example.com", "421 4.3.2 Service shutting down")
    with django_capture_on_commit_callbacks(execute=True):
        first = send(order(), to="first@example.com")
        second = send(order(), to="second@example.com")
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == Status.DEFERRED
    assert second.status == Status.SENT


def test_user_unknown_makes_the_address_defunct_and_falls_back_to_sms(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("gone@example.com", "550 5.1.1 <gone@example.com>: user unknown")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u2", email="gone@example.com", phone="+447700900123"))
    message.refresh_from_db()
    contact = ContactPoint.objects.get(channel="email", address="gone@example.com")
    assert contact.state == ContactState.DEFUNCT
    assert "5.1.1" in contact.reason and contact.evidence["enhanced_code"] == "5.1.1"
    deliveries = list(message.deliveries.order_by("pk"))
    assert [(d.channel, d.status, d.failure_class) for d in deliveries] == [
        ("email", Status.FAILED, FailureClass.RECIPIENT),
        ("sms", Status.SENT, ""),
    ]
    assert message.status == Status.SENT and message.channel == "sms"
    assert Event.objects.filter(type="contact.defunct", data__address="gone@example.com").exists()

    # The next message to the defunct address goes straight to SMS, and says why email was skipped.
    with django_capture_on_commit_callbacks(execute=True):
        later = send(order(), to=Recipient("u2", email="gone@example.com", phone="+447700900123"))
    skipped = later.deliveries.get(channel="email")
    assert skipped.status == Status.SKIPPED and "defunct" in skipped.reason
    assert len(smtp.handler.to("gone@example.com")) == 0


def test_a_policy_rejection_alerts_staff_and_does_not_blame_the_recipient(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("blocked@example.com", "550 5.7.1 Message rejected: sender IP on blocklist")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u3", email="blocked@example.com"))
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.failure_class == FailureClass.POLICY
    assert not ContactPoint.objects.filter(address="blocked@example.com", state=ContactState.DEFUNCT).exists()
    assert Alert.objects.filter(kind="policy", message=message).exists()
    alerts = smtp.handler.to("ops@example.com")
    assert len(alerts) == 1 and "Policy rejection" in alerts[0]["Subject"]
    assert Event.objects.filter(type="message.policy_rejected", stream_id=str(message.pk)).exists()


def test_a_mandatory_message_failing_everywhere_alerts_staff_and_calls_the_hook(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    cls = lookup("password_reset")
    assert cls is not None
    called: list[int] = []
    monkeypatch.setattr(cls, "on_mandatory_failure", classmethod(lambda c, m: called.append(m.pk)))
    smtp.handler.script("lost@example.com", "550 5.1.1 user unknown")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(cls.sample(), to=Recipient("u4", email="lost@example.com", phone="+447700900124"))
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.mandatory
    # Never re-routed: a password reset has only email, even though a phone number is known.
    assert list(message.deliveries.values_list("channel", flat=True)) == ["email"]
    assert called == [message.pk]
    assert Event.objects.filter(type="message.mandatory_failed", stream_id=str(message.pk)).exists()
    assert Alert.objects.filter(kind="mandatory_failed", message=message).exists()
    assert any("Mandatory message" in m["Subject"] for m in smtp.handler.to("ops@example.com"))


def test_a_dropped_connection_is_temporary(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("flaky@example.com", "DROP")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to="flaky@example.com")
    message.refresh_from_db()
    assert message.status == Status.DEFERRED
    with django_capture_on_commit_callbacks(execute=True):
        retry_due()
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_retries_stop_at_the_attempt_limit_and_the_message_fails(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture, settings: Any
) -> None:
    settings.CONSOLE_COMMS = {**settings.CONSOLE_COMMS, "MAX_ATTEMPTS": 2, "SOFT_FAIL_AFTER": 2}
    smtp.handler.script("busy@example.com", *["451 4.3.0 busy"] * 2)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to="busy@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        retry_due()
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.failure_class == FailureClass.TEMPORARY
    assert Message.objects.get(pk=message.pk).deliveries.get(channel="email").attempts == 2
    contact = ContactPoint.objects.get(address="busy@example.com")
    assert contact.state == ContactState.SOFT_FAILING and contact.soft_failures == 2

    # The next success clears the soft failures.
    with django_capture_on_commit_callbacks(execute=True):
        later = send(order(), to="busy@example.com")
    later.refresh_from_db()
    contact.refresh_from_db()
    assert later.status == Status.SENT
    assert contact.state == ContactState.ACTIVE and contact.soft_failures == 0
