"""Quiet hours after the first delivery: a retry, a fallback and a staff resend wait for the send window too.

Through the real delivery path against a real SMTP server answering 4xx/5xx. The window is placed around the
real clock in a real time zone (Australia/Sydney keeps daylight saving time in December, New York does not);
the daylight-saving changes themselves are crossed with fixed dates on the fallback path.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.comms import routing
from console.comms.classes import lookup
from console.comms.delivery import claim, send_claimed
from console.comms.explain import explain, timeline
from console.comms.models import Attempt, FailureClass, Message, Status
from console.comms.sending import Recipient, next_delivery, send
from console.comms.services import ResendRefused, message_resend
from console.events.models import Event
from tests.comms.smtp import SMTPServer

pytestmark = pytest.mark.usefixtures("inline_tasks")

Capture = Callable[..., Any]
SYDNEY = "Australia/Sydney"


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def quiet_now(settings: Any, zone: str, *, opens_in: timedelta = timedelta(hours=2)) -> datetime:
    """Close the orders window around the real clock in ``zone``: it opens ``opens_in`` from now for an hour.

    Returns when it opens (whole minutes), as an aware UTC datetime.
    """
    local = timezone.now().astimezone(ZoneInfo(zone)) + opens_in
    opens = local.replace(second=0, microsecond=0)
    closes = opens + timedelta(hours=1)
    settings.CONSOLE_COMMS = {
        **settings.CONSOLE_COMMS,
        "SEND_WINDOWS": {"orders": [f"{opens:%H:%M}", f"{closes:%H:%M}"], "security": [f"{opens:%H:%M}", "23:59"]},
    }
    return opens.astimezone(UTC)


def sent_now(capture: Capture, settings: Any, zone: str, **recipient: Any) -> tuple[Message, datetime]:
    """Send while the window is open (no window yet), then close it before the worker's first attempt."""
    with capture() as callbacks:
        message = send(order(), to=Recipient("r", time_zone=zone, **recipient))
    assert message.held_until is None
    opening = quiet_now(settings, zone)
    with capture(execute=True):
        for callback in callbacks:
            callback()
    message.refresh_from_db()
    return message, opening


def test_a_retry_outside_the_window_waits_for_it_and_the_page_says_until_when(
    smtp: SMTPServer, db: None, settings: Any, django_capture_on_commit_callbacks: Capture, client: Client, staff: User
) -> None:
    smtp.handler.script("syd@example.com", "450 4.2.0 Mailbox busy, try later")
    message, opening = sent_now(django_capture_on_commit_callbacks, settings, SYDNEY, email="syd@example.com")
    delivery = message.deliveries.get()
    assert message.status == Status.DEFERRED and delivery.status == Status.DEFERRED
    assert delivery.next_attempt_at == opening and message.held_until == opening
    assert message.hold_reason.startswith("quiet hours: category orders sends between")
    assert message.hold_reason.endswith(f"({SYDNEY})")
    deferred = Event.objects.get(type="message.deferred", stream_id=str(message.pk))
    assert datetime.fromisoformat(deferred.data["retry_at"]) == opening
    assert deferred.data["hold_reason"] == message.hold_reason

    client.force_login(staff)
    page = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert f"Its next retry is held until {opening:%Y-%m-%d %H:%M} UTC, when its send window opens" in page
    assert f"({SYDNEY})" in page

    assert claim(None, now=opening - timedelta(seconds=1)) == []
    with django_capture_on_commit_callbacks(execute=True):
        assert send_claimed(claim(None, now=opening)) == {"sent": 1}
    message.refresh_from_db()
    assert message.status == Status.SENT
    assert [a.code for a in Attempt.objects.filter(delivery__message=message)] == [450, None]
    assert len(smtp.handler.to("syd@example.com")) == 1


def test_a_retry_whose_window_opens_after_expiry_expires_unsent(
    smtp: SMTPServer, db: None, settings: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("late@example.com", "450 4.2.0 Mailbox busy, try later")
    with django_capture_on_commit_callbacks() as callbacks:
        message = send(
            order(),
            to=Recipient("r", email="late@example.com", phone="+61400000000", time_zone="America/New_York"),
            expires_at=timezone.now() + timedelta(hours=1),
        )
    quiet_now(settings, "America/New_York")
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.failure_class == FailureClass.EXPIRED
    email = message.deliveries.get()  # no fallback to SMS outside the window either
    assert email.status == Status.FAILED and email.failure_class == FailureClass.EXPIRED
    assert "after the message expires at" in email.reason and email.reason.startswith("quiet hours:")
    assert [a.code for a in Attempt.objects.filter(delivery=email)] == [450]
    assert smtp.handler.accepted == []


def test_a_fallback_outside_the_window_waits_for_it(
    smtp: SMTPServer, db: None, settings: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("gone@example.com", "550 5.1.1 <gone@example.com>: user unknown")
    message, opening = sent_now(
        django_capture_on_commit_callbacks, settings, SYDNEY, email="gone@example.com", phone="+61400000001"
    )
    deliveries = list(message.deliveries.order_by("pk"))
    assert [(d.channel, d.status) for d in deliveries] == [("email", Status.FAILED), ("sms", Status.QUEUED)]
    assert deliveries[1].next_attempt_at == opening and message.held_until == opening
    attempts = list(Attempt.objects.filter(delivery__message=message))
    why = [step.why for step in timeline(message, deliveries, attempts) if step.kind == "delivery"]
    held = f"held for quiet hours until {opening:%Y-%m-%d %H:%M} UTC"
    assert why[1] == f"fallback: Email did not deliver (permanent: recipient); {held}"
    lines = explain(message, deliveries, attempts)
    assert lines[0].startswith(f"Waiting until {opening:%Y-%m-%d %H:%M} UTC, when its send window opens")
    assert any(line.startswith("SMS to +61400000001 is queued (quiet hours:") for line in lines)
    assert claim(None, now=opening - timedelta(seconds=1)) == []


def test_a_staff_resend_outside_the_window_waits_for_it(
    smtp: SMTPServer,
    db: None,
    settings: Any,
    django_capture_on_commit_callbacks: Capture,
    client: Client,
    operator: User,
) -> None:
    smtp.handler.script("once@example.com", "554 5.7.1 Rejected by policy")
    message, opening = sent_now(django_capture_on_commit_callbacks, settings, SYDNEY, email="once@example.com")
    assert message.status == Status.FAILED
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("comms:message_resend", args=[message.pk]))
    message.refresh_from_db()
    resent = message.deliveries.order_by("pk").last()
    assert resent is not None and resent.status == Status.QUEUED and resent.next_attempt_at == opening
    assert message.status == Status.QUEUED and message.held_until == opening
    page = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert f"Waiting until {opening:%Y-%m-%d %H:%M} UTC, when its send window opens" in page
    assert f"resent by staff; held for quiet hours until {opening:%Y-%m-%d %H:%M} UTC" in page
    assert smtp.handler.to("once@example.com") == []


def test_a_resend_whose_window_opens_after_expiry_is_refused_and_writes_nothing(
    smtp: SMTPServer, db: None, settings: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    smtp.handler.script("short@example.com", "554 5.7.1 Rejected by policy")
    with django_capture_on_commit_callbacks(execute=True):
        message = send(
            order(), to=Recipient("r", email="short@example.com"), expires_at=timezone.now() + timedelta(minutes=30)
        )
    quiet_now(settings, settings.TIME_ZONE)
    before = message.deliveries.count()
    with pytest.raises(ResendRefused, match="would wait for its send window and expire first"):
        message_resend(message=message, actor=None)
    assert message.deliveries.count() == before
    message.refresh_from_db()
    assert message.status == Status.FAILED and message.failure_class == FailureClass.POLICY


def test_a_mandatory_retry_never_waits(
    smtp: SMTPServer, db: None, settings: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    reset = lookup("password_reset")
    assert reset is not None
    smtp.handler.script("reset@example.com", "450 4.2.0 Mailbox busy, try later")
    quiet_now(settings, SYDNEY)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(reset.sample(), to=Recipient("r", email="reset@example.com", time_zone=SYDNEY))
    message.refresh_from_db()
    delivery = message.deliveries.get()
    assert message.status == Status.DEFERRED and message.held_until is None and message.hold_reason == ""
    assert delivery.next_attempt_at < timezone.now() + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("zone", "start", "opening"),
    [
        # New York springs forward at 07:00 UTC on 10 March 2030: 08:00 that day is EDT (UTC-4), 12:00 UTC.
        ("America/New_York", datetime(2030, 3, 10, 6, 30, tzinfo=UTC), datetime(2030, 3, 10, 12, 0, tzinfo=UTC)),
        # It falls back at 06:00 UTC on 3 November 2030: 08:00 that day is EST (UTC-5), 13:00 UTC.
        ("America/New_York", datetime(2030, 11, 3, 5, 30, tzinfo=UTC), datetime(2030, 11, 3, 13, 0, tzinfo=UTC)),
        # Sydney leaves daylight saving time at 16:00 UTC on 6 April 2030: 08:00 on the 7th is AEST, 22:00 UTC.
        ("Australia/Sydney", datetime(2030, 4, 6, 14, 0, tzinfo=UTC), datetime(2030, 4, 6, 22, 0, tzinfo=UTC)),
    ],
)
def test_a_fallback_across_a_daylight_saving_change_waits_until_the_local_opening(
    db: None, settings: Any, zone: str, start: datetime, opening: datetime
) -> None:
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": ["08:00", "21:00"]}}
    message = send(
        order(),
        to=Recipient("r", email="a@example.com", phone="+12025550100", time_zone=zone),
        send_at=opening,
        expires_at=opening + timedelta(days=2),
    )
    fallback = next_delivery(message, tried={"email"}, start=start)
    assert fallback is not None and fallback.channel == "sms" and fallback.next_attempt_at == opening
    message.refresh_from_db()
    assert message.held_until == opening
    assert routing.hold_message(message, opening) == (None, "")
