"""Quiet hours: a message due outside its send window waits for it, in the recipient's time zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from console.comms import sending
from console.comms.classes import MessageClass, lookup, message_classes, register
from console.comms.conf import CommsSettings
from console.comms.delivery import claim
from console.comms.models import Status
from console.comms.sending import InvalidAddress, Recipient, send
from console.comms.services import message_cancel

# 10:30 UTC on 15 January 2030 is 23:30 in Auckland (NZDT, UTC+13) and 10:30 in London (GMT).
DUE = datetime(2030, 1, 15, 10, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def orders_window(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": ["08:00", "21:00"], "security": ["08:00", "21:00"]}}
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: None)


@pytest.fixture
def one_time_code() -> Iterator[type[MessageClass]]:
    @register
    class OneTimeCode(MessageClass):
        key = "test_one_time_code"
        template_dir = "order_confirmation"
        category = "orders"
        time_critical = True
        context_fields: ClassVar[tuple[str, ...]] = ("name", "order_number", "total")

    yield OneTimeCode
    message_classes.pop(OneTimeCode.key)


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def test_it_waits_for_the_window_in_the_recipients_time_zone_across_the_date_line(db: None) -> None:
    auckland = send(order(), to=Recipient("nz", email="nz@example.com", time_zone="Pacific/Auckland"), send_at=DUE)
    # Next 08:00 in Auckland is on the 16th there, 19:00 UTC on the 15th.
    opens = datetime(2030, 1, 15, 19, 0, tzinfo=UTC)
    assert auckland.held_until == opens
    assert auckland.hold_reason == "quiet hours: category orders sends between 08:00 and 21:00 (Pacific/Auckland)"
    assert auckland.deliveries.get().next_attempt_at == opens
    assert auckland.expires_at == DUE + timedelta(days=2)  # waiting does not extend its life
    assert claim(None, now=opens - timedelta(seconds=1)) == []
    assert [d.message_id for d in claim(None, now=opens)] == [auckland.pk]


def test_the_same_moment_inside_another_recipients_window_sends_at_once(db: None) -> None:
    london = send(order(), to=Recipient("uk", email="uk@example.com", time_zone="Europe/London"), send_at=DUE)
    assert london.held_until is None and london.deliveries.get().next_attempt_at == DUE


def test_before_the_window_it_waits_for_the_same_days_opening(db: None) -> None:
    # 06:00 UTC on 15 January is 22:00 on the 14th in Los Angeles (PST, UTC-8): opens 08:00 on the 15th there.
    due = datetime(2030, 1, 15, 6, 0, tzinfo=UTC)
    la = send(order(), to=Recipient("us", email="us@example.com", time_zone="America/Los_Angeles"), send_at=due)
    assert la.held_until == datetime(2030, 1, 15, 16, 0, tzinfo=UTC)
    early = datetime(2030, 1, 15, 14, 0, tzinfo=UTC)  # 06:00 in Los Angeles
    la2 = send(order(), to=Recipient("us2", email="us2@example.com", time_zone="America/Los_Angeles"), send_at=early)
    assert la2.held_until == datetime(2030, 1, 15, 16, 0, tzinfo=UTC)


def test_a_window_spanning_midnight(db: None, settings: Any) -> None:
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": ["20:00", "02:00"]}}
    inside = send(order(), to=Recipient("a", email="a@example.com"), send_at=datetime(2030, 1, 15, 1, 0, tzinfo=UTC))
    outside = send(order(), to=Recipient("b", email="b@example.com"), send_at=DUE)
    assert inside.held_until is None
    assert outside.held_until == datetime(2030, 1, 15, 20, 0, tzinfo=UTC)


def test_mandatory_and_time_critical_messages_never_wait(db: None, one_time_code: type[MessageClass]) -> None:
    to = Recipient("nz", email="nz@example.com", time_zone="Pacific/Auckland")
    reset = lookup("password_reset")
    assert reset is not None
    assert send(reset.sample(), to=to, send_at=DUE).held_until is None
    code = send(one_time_code(name="Ada", order_number="1", total="1"), to=to, send_at=DUE)
    assert code.held_until is None and code.deliveries.get().next_attempt_at == DUE


def test_a_class_window_wins_over_the_categorys(db: None) -> None:
    @register
    class Digest(MessageClass):
        key = "test_digest"
        template_dir = "order_confirmation"
        category = "orders"
        send_window = (time(11), time(12))
        context_fields: ClassVar[tuple[str, ...]] = ("name", "order_number", "total")

    try:
        held = send(Digest(name="Ada", order_number="1", total="1"), to="ada@example.com", send_at=DUE)
    finally:
        message_classes.pop(Digest.key)
    assert held.held_until == datetime(2030, 1, 15, 11, 0, tzinfo=UTC)
    assert held.hold_reason.startswith("quiet hours: class test_digest sends between 11:00 and 12:00")


def test_an_unknown_time_zone_is_refused(db: None) -> None:
    with pytest.raises(InvalidAddress, match="is not a time zone name"):
        send(order(), to=Recipient("x", email="x@example.com", time_zone="Mars/Olympus"))


def test_the_message_page_says_why_it_waits_and_until_when(client: Client, staff: User) -> None:
    held = send(order(), to=Recipient("nz", email="nz@example.com", time_zone="Pacific/Auckland"), send_at=DUE)
    client.force_login(staff)
    page = client.get(reverse("comms:message", args=[held.pk])).content.decode()
    assert "Waiting until 2030-01-15 19:00 UTC, when its send window opens" in page
    assert "category orders sends between 08:00 and 21:00 (Pacific/Auckland)" in page
    message_cancel(message=held)
    assert held.status == Status.CANCELLED
    after = client.get(reverse("comms:message", args=[held.pk])).content.decode()
    assert "Waiting until" not in after


def test_the_setting_is_checked(settings: Any) -> None:
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": ["8am", "21:00"]}}
    assert any("SEND_WINDOWS['orders']" in str(m) for m in CommsSettings.check())
