"""Provider failover against two real SMTP servers: the next provider on provider failures, never on recipient
ones; a circuit breaker per provider shared through the database; a rate limit per provider."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import django
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.comms.classes import lookup
from console.comms.explain import timeline
from console.comms.failover import routes
from console.comms.models import Attempt, Breaker, ContactPoint, ContactState, FailureClass, ProviderState, Status
from console.comms.outcomes import classify_http, classify_smtp
from console.comms.sending import Recipient, send
from console.events.models import Event
from tests.comms.smtp import SMTPServer, free_port

pytestmark = [
    pytest.mark.usefixtures("inline_tasks"),
    pytest.mark.skipif(django.VERSION < (6, 1), reason="several mailers need Django 6.1's MAILERS"),
]

Capture = Callable[..., Any]
CLOSING = "421 4.3.2 Service shutting down"


def order(**overrides: Any) -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls(**{**cls.sample_context, **overrides})


def smtp_mailer(port: int) -> dict[str, Any]:
    options = {"host": "127.0.0.1", "port": port, "timeout": 5}
    return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}


@pytest.fixture(scope="module")
def backup_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def two_relays(smtp: SMTPServer, backup_server: SMTPServer, settings: Any) -> Iterator[tuple[SMTPServer, SMTPServer]]:
    """The default mailer on the first server, "backup" on the second, tried after it; breaker at 2 failures."""
    backup_server.handler.reset()
    settings.MAILERS = {"default": smtp_mailer(smtp.port), "backup": smtp_mailer(backup_server.port)}
    settings.CONSOLE_COMMS = {
        "ALERT_EMAILS": ["ops@example.com"],
        "BACKOFF_BASE_SECONDS": 0.001,
        "MAILER_FAILOVER": {"default": ["backup"]},
        "BREAKER_FAILURES": 2,
    }
    yield smtp, backup_server
    backup_server.handler.reset()


def providers_tried(message: Any) -> list[tuple[str, str, str]]:
    return [
        (a.channel, a.provider, a.outcome)
        for a in Attempt.objects.filter(delivery__message=message).order_by("at", "pk")
    ]


def breaker(name: str) -> ProviderState:
    return ProviderState.objects.get(name=name)


def test_provider_failures_and_recipient_failures_are_told_apart() -> None:
    assert classify_smtp(421, "4.3.2 Service shutting down").provider_fault
    assert classify_smtp(454, "4.7.0 TLS not available").provider_fault
    assert not classify_smtp(450, "4.2.0 Mailbox busy").provider_fault
    assert not classify_smtp(550, "5.1.1 User unknown").provider_fault
    assert classify_http(503, "down", None).provider_fault and classify_http(429, "slow down", "3").provider_fault
    assert not classify_http(404, "no such device", None).provider_fault


def test_a_421_from_the_first_relay_fails_over_and_the_breaker_opens_then_closes_after_a_probe(
    two_relays: tuple[SMTPServer, SMTPServer], db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    first, second = two_relays
    for n in (1, 2, 3):
        first.handler.script(f"r{n}@example.com", CLOSING)
    with django_capture_on_commit_callbacks(execute=True):
        one = send(order(), to="r1@example.com")
    one.refresh_from_db()
    assert one.status == Status.SENT and len(second.handler.to("r1@example.com")) == 1
    assert first.handler.to("r1@example.com") == []
    assert providers_tried(one) == [
        ("email", "email:default", "temporary"),
        ("email", "email:backup", "sent"),
    ]
    assert one.deliveries.get().provider == "email:backup"
    steps = timeline(one, list(one.deliveries.all()), list(Attempt.objects.filter(delivery__message=one)))
    assert [step.why for step in steps if step.kind == "attempt"] == [
        "first attempt",
        "failover: email:default failed at the provider level",
    ]
    assert breaker("email:default").breaker == Breaker.CLOSED and breaker("email:default").failures == 1

    with django_capture_on_commit_callbacks(execute=True):
        send(order(), to="r2@example.com")
    opened = breaker("email:default")
    assert opened.breaker == Breaker.OPEN and "421" in opened.last_error
    assert Event.objects.filter(type="provider.circuit_opened", data__provider="email:default").exists()

    # While the circuit is open the first relay is not even asked: its scripted 421 for r3 stays unused.
    with django_capture_on_commit_callbacks(execute=True):
        three = send(order(), to="r3@example.com")
    assert providers_tried(three) == [("email", "email:backup", "sent")]
    assert list(first.handler.scripts["r3@example.com"]) == [CLOSING]
    first.handler.reset()

    # Once the reset time has passed, one message probes the first relay; it is healthy again, so it closes.
    ProviderState.objects.filter(name="email:default").update(probe_at=timezone.now() - timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        probe = send(order(), to="r4@example.com")
    assert providers_tried(probe) == [("email", "email:default", "sent")]
    assert len(first.handler.to("r4@example.com")) == 1
    closed = breaker("email:default")
    assert closed.breaker == Breaker.CLOSED and closed.failures == 0 and closed.probe_at is None
    assert Event.objects.filter(type="provider.circuit_closed", data__provider="email:default").exists()


def test_a_refused_connection_fails_over_and_a_user_unknown_from_the_second_falls_back_to_sms_not_the_first(
    two_relays: tuple[SMTPServer, SMTPServer],
    settings: Any,
    db: None,
    django_capture_on_commit_callbacks: Capture,
) -> None:
    _, second = two_relays
    settings.MAILERS = {**settings.MAILERS, "default": smtp_mailer(free_port())}  # nothing listens there
    second.handler.script("gone@example.com", "550 5.1.1 <gone@example.com>: user unknown")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u9", email="gone@example.com", phone="+447700900123"))
    message.refresh_from_db()
    assert message.status == Status.SENT and message.channel == "sms"
    assert providers_tried(message) == [
        ("email", "email:default", "temporary"),
        ("email", "email:backup", "recipient"),
        ("sms", "sms:1", "sent"),
    ]
    email, sms = message.deliveries.order_by("pk")
    assert (email.status, email.failure_class, sms.status) == (Status.FAILED, FailureClass.RECIPIENT, Status.SENT)
    assert ContactPoint.objects.get(channel="email", address="gone@example.com").state == ContactState.DEFUNCT
    assert breaker("email:default").failures == 1 and breaker("email:backup").failures == 0


def test_when_every_provider_is_open_the_delivery_waits_for_the_probe_without_blaming_the_address(
    two_relays: tuple[SMTPServer, SMTPServer], db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    probe_at = timezone.now() + timedelta(minutes=5)
    for name in ("email:default", "email:backup"):
        ProviderState.objects.create(name=name, breaker=Breaker.OPEN, failures=2, probe_at=probe_at)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to="wait@example.com")
    message.refresh_from_db()
    delivery = message.deliveries.get()
    assert message.status == Status.DEFERRED and delivery.next_attempt_at >= probe_at - timedelta(seconds=1)
    assert "circuit open" in delivery.reason
    assert not ContactPoint.objects.filter(address="wait@example.com", soft_failures__gt=0).exists()


def test_sms_fails_over_from_an_http_provider_that_is_down_to_the_next_adapter(
    settings: Any, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    down = {"CLASS": "console.comms.providers.HttpProvider", "OPTIONS": {"url": f"http://127.0.0.1:{free_port()}/"}}
    settings.CONSOLE_COMMS = {
        "SMS_PROVIDER": {**down, "NAME": "acme"},
        "SMS_FAILOVER": [{"CLASS": "console.comms.providers.LogProvider", "NAME": "fallback"}],
    }
    assert [r.name for r in routes("sms")] == ["sms:acme", "sms:fallback"]
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u10", phone="+447700900124"))
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert providers_tried(message) == [("sms", "sms:acme", "temporary"), ("sms", "sms:fallback", "sent")]


def test_a_provider_rate_limit_spreads_sends_over_time(
    smtp: SMTPServer, settings: Any, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.CONSOLE_COMMS = {"PROVIDER_RATES": {"email:default": 10}}
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(25):
            send(order(), to=f"rate{n}@example.com")
    # 25 messages at 10 a second need three one-second windows: at least two window boundaries pass.
    assert time.monotonic() - started >= 1.0
    assert len(smtp.handler.accepted) == 25
    assert breaker("email:default").window_count <= 10


def test_the_dashboard_shows_each_providers_circuit_and_recent_error_rate(
    client: Client, staff: User, db: None
) -> None:
    ProviderState.objects.create(
        name="email:default", breaker=Breaker.OPEN, failures=5, last_error="421 4.3.2 Service shutting down"
    )
    message = send(order(), to="panel@example.com")
    delivery = message.deliveries.get()
    Attempt.objects.create(delivery=delivery, channel="email", address="x", outcome="temporary", provider="sms:1")
    Attempt.objects.create(delivery=delivery, channel="email", address="x", outcome="sent", provider="sms:1")
    client.force_login(staff)
    page = client.get(reverse("core:dashboard")).content.decode()
    assert "email:default" in page and "open" in page and "421 4.3.2 Service shutting down" in page
    assert "50% of 2" in page
