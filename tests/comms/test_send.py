"""send(): checked in the caller, idempotent, written with its first delivery, dispatched on commit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any, ClassVar

import pytest

from console.comms import alerts, sending
from console.comms.classes import MessageClass, MessageError, lookup, register
from console.comms.delivery import backoff_seconds
from console.comms.maintenance import expire
from console.comms.models import Delivery, FailureClass, Message, Preference, Status
from console.comms.outcomes import POLICY, RECIPIENT, TEMPORARY, classify_smtp, parse_retry_after
from console.comms.sending import InvalidAddress, Recipient, send
from console.events.models import Event

Capture = Callable[..., Any]


def cls_of(key: str) -> type[MessageClass]:
    cls = lookup(key)
    assert cls is not None
    return cls


def test_a_missing_context_value_fails_at_send_naming_class_and_variable(db: None) -> None:
    with pytest.raises(MessageError, match="OrderConfirmation: missing context value\\(s\\) total"):
        cls_of("order_confirmation")(name="Ada", order_number="A-1")
    assert not Message.objects.exists()


@register
class BrokenTemplate(MessageClass):
    key = "test_broken_template"
    template_dir = "password_reset"
    context_fields = ("name",)
    sample_context: ClassVar[dict[str, Any]] = {"name": "Ada"}


def test_a_template_variable_the_context_lacks_fails_at_send(db: None) -> None:
    with pytest.raises(MessageError, match=r"BrokenTemplate: template comms/password_reset/body\.txt uses 'reset_url'"):
        send(BrokenTemplate(name="Ada"), to="ada@example.com")
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    "to",
    [
        "not-an-email",
        Recipient("k", email="a@b.example", phone="0770"),
        Recipient("k", phone="+44²²²²²²²²²"),  # str.isdigit() accepts superscripts; E.164 is ASCII digits
        Recipient("", email="a@example.com"),
    ],
)
def test_an_invalid_address_is_rejected_at_send(db: None, to: Any) -> None:
    with pytest.raises(InvalidAddress):
        send(cls_of("order_confirmation").sample(), to=to)
    assert not Message.objects.exists()


def test_the_same_idempotency_key_returns_the_first_message(
    db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatched: list[list[int]] = []
    monkeypatch.setattr(sending, "dispatch_soon", lambda ids: dispatched.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        first = send(cls_of("order_confirmation").sample(), to="ada@example.com", idempotency_key="order-1")
        again = send(cls_of("order_confirmation").sample(), to="ada@example.com", idempotency_key="order-1")
    assert first.pk == again.pk
    assert Message.objects.count() == 1 and Delivery.objects.count() == 1
    assert dispatched == [[first.deliveries.get().pk]]  # one task for the transaction, after commit
    assert Event.objects.filter(type="message.queued").count() == 1


def test_nothing_is_dispatched_when_the_callers_transaction_rolls_back(
    db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import transaction

    dispatched: list[list[int]] = []
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: dispatched.append(ids))
    monkeypatch.setattr(sending, "dispatch_soon", lambda ids: dispatched.append(ids))
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        send(cls_of("order_confirmation").sample(), to="ada@example.com")
        raise RuntimeError("the order failed")
    assert callbacks == [] and dispatched == []
    assert not Message.objects.exists()


def test_preferences_order_channels_and_mandatory_messages_ignore_opt_outs(db: None) -> None:
    Preference.objects.create(recipient="u9", category="orders", channels=["email"])
    Preference.objects.create(recipient="u9", category="security", channels=[])
    to = Recipient("u9", email="u9@example.com", phone="+447700900999", push_token="tok")
    shipping = send(cls_of("shipping_update").sample(), to=to)
    assert shipping.channels == ["email"] and shipping.deliveries.get(status=Status.QUEUED).channel == "email"
    reset = send(cls_of("password_reset").sample(), to=to)
    assert reset.channels == ["email"] and reset.status == Status.QUEUED
    Preference.objects.create(recipient="u10", category="orders", channels=[])
    skipped = send(cls_of("order_confirmation").sample(), to=Recipient("u10", email="u10@example.com"))
    assert skipped.status == Status.SKIPPED and skipped.failure_class == FailureClass.PREFERENCE


def test_expired_deliveries_stop_and_mandatory_ones_alert(
    db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(alerts, "alert_staff", lambda text, message_id: None)
    message = send(cls_of("password_reset").sample(), to="ada@example.com")
    Message.objects.filter(pk=message.pk).update(expires_at=message.created_at - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert expire() == "1 expired"
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.failure_class == FailureClass.EXPIRED
    assert Event.objects.filter(type="message.mandatory_failed").exists()


@pytest.mark.parametrize(
    ("code", "reply", "kind"),
    [
        (450, "4.2.0 busy", TEMPORARY),
        (421, "4.3.2 closing", TEMPORARY),
        (552, "5.2.2 mailbox full", TEMPORARY),
        (550, "5.1.1 user unknown", RECIPIENT),
        (550, "5.2.1 mailbox disabled", RECIPIENT),
        (550, "5.7.1 blocked", POLICY),
        (554, "5.7.26 DMARC", POLICY),
        (553, "5.1.8 bad sender domain", "infrastructure"),
        (554, "transaction failed", "infrastructure"),
    ],
)
def test_smtp_replies_are_classified(code: int, reply: str, kind: str) -> None:
    assert classify_smtp(code, reply.encode()).kind == kind


def test_backoff_has_full_jitter_within_the_cap_and_honours_retry_after(settings: Any) -> None:
    settings.CONSOLE_COMMS = {"BACKOFF_BASE_SECONDS": 10.0, "BACKOFF_CAP_SECONDS": 60.0}
    delays = [backoff_seconds(5) for _ in range(200)]
    assert all(0 <= d <= 60 for d in delays) and len(set(delays)) > 100
    assert min(backoff_seconds(1, retry_after=120) for _ in range(20)) >= 120
    assert parse_retry_after("30") == 30.0
    assert parse_retry_after("garbage") is None
    assert parse_retry_after("³⁰") is None  # str.isdigit() says yes; float() says no


def test_a_message_for_later_is_dispatched_to_run_then(
    db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.utils import timezone

    dispatched: list[tuple[list[int], Any]] = []
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: dispatched.append((ids, run_after)))
    when = timezone.now() + timedelta(hours=2)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(cls_of("order_confirmation").sample(), to="ada@example.com", send_at=when)
    assert dispatched == [([message.deliveries.get().pk], when)]
    assert message.expires_at == when + cls_of("order_confirmation").ttl
