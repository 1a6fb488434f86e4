"""The message page's timeline: every attempt across channels, and why each next step was taken."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from console.comms.classes import lookup
from console.comms.explain import timeline
from console.comms.maintenance import retry_due
from console.comms.models import Attempt, Message
from console.comms.sending import Recipient, send
from console.comms.services import set_preference
from tests.comms.smtp import SMTPServer

Capture = Callable[..., Any]
pytestmark = pytest.mark.usefixtures("inline_tasks")


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def steps_of(message: Message) -> list[tuple[str, str, str]]:
    deliveries = list(message.deliveries.order_by("created_at", "pk"))
    attempts = list(Attempt.objects.filter(delivery__message=message).order_by("at", "pk"))
    return [(s.kind, s.channel, s.why) for s in timeline(message, deliveries, attempts)]


def test_it_names_retries_and_the_fallback_to_the_next_channel(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("gone@example.com", "450 4.2.0 Mailbox busy", "550 5.1.1 user unknown")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u1", email="gone@example.com", phone="+447700900123"))
    with django_capture_on_commit_callbacks(execute=True):
        retry_due()
    message.refresh_from_db()
    assert steps_of(message) == [
        ("delivery", "Email", "first channel the message may use"),
        ("attempt", "Email", "first attempt"),
        ("attempt", "Email", "retry after a temporary failure (450)"),
        ("delivery", "SMS", "fallback: Email did not deliver (permanent: recipient)"),
        ("attempt", "SMS", "first attempt"),
    ]


def test_it_names_the_preference_and_the_quiet_hours(db: None, settings: Any) -> None:
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": ["08:00", "21:00"]}}
    set_preference(recipient="u2", category="orders", channel="email", allowed=False)
    due = datetime(2030, 1, 15, 22, 0, tzinfo=UTC)
    message = send(order(), to=Recipient("u2", email="u2@example.com", phone="+447700900124"), send_at=due)
    assert steps_of(message) == [
        ("delivery", "Email", "preference: the recipient turned this channel off"),
        ("delivery", "SMS", "first channel; held for quiet hours until 2030-01-16 08:00 UTC"),
    ]


def test_the_page_shows_the_timeline_with_the_provider_and_why(
    smtp: SMTPServer, client: Client, staff: User, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=Recipient("u3", email="u3@example.com"))
    client.force_login(staff)
    page = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    provider_id = Attempt.objects.get(delivery__message=message).provider_id
    assert 'data-testid="timeline"' in page and "first channel the message may use" in page
    assert provider_id and provider_id.replace("<", "&lt;").replace(">", "&gt;") in page
