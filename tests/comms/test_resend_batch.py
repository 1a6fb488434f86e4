"""The batched resend (``resend_batch``) against the one-by-one path (``message_resend``): the same outcome.

Two copies of one mixed set of messages, one resent each way, must end with the same deliveries, statuses,
skip reasons and events; and resends racing each other, a worker and a cancel never leave a message with two
live deliveries (the race runs for real on PostgreSQL).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.comms.classes import lookup
from console.comms.models import ACTIVE_STATUSES, ContactPoint, ContactState, Delivery, Message, Status
from console.comms.sending import Recipient, send
from console.comms.services import (
    CancelRefused,
    message_cancel,
    resend_batch,
    resend_each,
    set_preference,
)
from console.events.models import Event

Capture = Callable[..., Any]


def _send(kind: str, key: str, *, email: str = "", phone: str = "", time_zone: str = "") -> Message:
    cls = lookup(kind)
    assert cls is not None
    return send(cls.sample(), to=Recipient(key, email=email, phone=phone, time_zone=time_zone))


def _as(message: Message, status: str) -> Message:
    Message.objects.filter(pk=message.pk).update(status=status, failure_class="temporary" if status == "failed" else "")
    Delivery.objects.filter(message=message).update(status=status)
    message.refresh_from_db()
    return message


def mixed_set(p: str, past: datetime) -> list[Message]:
    """One message per case, recipients and addresses prefixed with ``p`` so two copies never share them."""
    plain = _as(_send("order_confirmation", f"{p}plain", email=f"{p}plain@example.com"), Status.FAILED)
    defunct = _as(
        _send("order_confirmation", f"{p}gone", email=f"{p}gone@example.com", phone="+447700900001"), Status.FAILED
    )
    defunct_only = _as(_send("order_confirmation", f"{p}gone2", email=f"{p}gone2@example.com"), Status.FAILED)
    for address in (f"{p}gone@example.com", f"{p}gone2@example.com"):
        ContactPoint.objects.create(
            channel="email", address=address, state=ContactState.DEFUNCT, reason="550 5.1.1 user unknown"
        )
    opted = _as(
        _send("order_confirmation", f"{p}opt", email=f"{p}opt@example.com", phone="+447700900002"), Status.FAILED
    )
    set_preference(recipient=f"{p}opt", category="orders", channel="email", allowed=False)
    opted_all = _as(_send("order_confirmation", f"{p}none", email=f"{p}none@example.com"), Status.FAILED)
    set_preference(recipient=f"{p}none", category="orders", channel="email", allowed=False)
    set_preference(recipient=f"{p}none", category="orders", channel="sms", allowed=False)
    mandatory = _as(_send("password_reset", f"{p}reset", email=f"{p}reset@example.com"), Status.FAILED)
    set_preference(recipient=f"{p}reset", category="security", channel="email", allowed=False)
    expired = _as(_send("order_confirmation", f"{p}old", email=f"{p}old@example.com"), Status.FAILED)
    Message.objects.filter(pk=expired.pk).update(expires_at=past)
    in_flight = _send("order_confirmation", f"{p}busy", email=f"{p}busy@example.com")
    sent = _as(_send("order_confirmation", f"{p}sent", email=f"{p}sent@example.com"), Status.SENT)
    held = _as(
        _send("order_confirmation", f"{p}syd", email=f"{p}syd@example.com", time_zone="Australia/Sydney"), Status.FAILED
    )
    return [plain, defunct, defunct_only, opted, opted_all, mandatory, expired, in_flight, sent, held]


def outcome(messages: list[Message], p: str, since: int, reasons: list[str]) -> dict[str, Any]:
    """Everything the two paths must agree on, with ids and prefixes replaced by positions and a marker."""
    index = {m.pk: i for i, m in enumerate(messages)}
    now = timezone.now()

    def plain(text: str) -> str:
        for pk, i in index.items():
            text = text.replace(f"#{pk} ", f"#<{i}> ")
        return text.replace(p, "<p>")

    rows = []
    for message in messages:
        message.refresh_from_db()
        deliveries = [
            (
                d.channel,
                plain(d.address),
                d.status,
                d.failure_class,
                plain(d.reason),
                d.next_attempt_at if d.next_attempt_at > now else "due",
            )
            for d in message.deliveries.order_by("pk")
        ]
        rows.append(
            (
                message.status,
                message.channel,
                message.failure_class,
                message.held_until,
                message.hold_reason,
                deliveries,
            )
        )
    events = [
        (e.type, index[int(e.stream_id)], e.actor_id, {k: v for k, v in e.data.items() if k != "message_id"})
        for e in Event.objects.filter(position__gt=since, stream_type="message").order_by("position")
    ]
    return {"messages": rows, "events": events, "reasons": [plain(r) for r in reasons]}


@pytest.mark.parametrize("force", [False, True])
def test_the_batched_path_gives_exactly_what_the_one_by_one_path_gives(
    db: None,
    settings: Any,
    operator: User,
    dispatched: list[list[int]],
    django_capture_on_commit_callbacks: Capture,
    force: bool,
) -> None:
    # A window open now in the site's time zone and closed in Sydney's: the Sydney recipient's resend waits.
    now = timezone.now()
    site, sydney = now.astimezone(ZoneInfo(settings.TIME_ZONE)), now.astimezone(ZoneInfo("Australia/Sydney"))
    assert abs(site.utcoffset() - sydney.utcoffset()) >= timedelta(hours=2)  # type: ignore[operator]
    opens, closes = site - timedelta(hours=1), site + timedelta(hours=1)
    settings.CONSOLE_COMMS = {"SEND_WINDOWS": {"orders": [f"{opens:%H:%M}", f"{closes:%H:%M}"]}}
    past = now - timedelta(minutes=1)
    with django_capture_on_commit_callbacks(execute=True):  # as if their transactions had committed
        one_by_one, batched = mixed_set("a-", past), mixed_set("b-", past)
    dispatched.clear()

    since = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    with django_capture_on_commit_callbacks(execute=True):
        resent_each, reasons_each = resend_each(
            Message.objects.filter(pk__in=[m.pk for m in one_by_one]), actor=operator, force=force
        )
    expected = outcome(one_by_one, "a-", since, reasons_each)
    middle = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    dispatched.clear()
    with django_capture_on_commit_callbacks(execute=True):
        resent_batch, reasons_batch = resend_batch([m.pk for m in batched], actor=operator, force=force)
    got = outcome(batched, "b-", middle, reasons_batch)

    assert (resent_batch, got["reasons"]) == (resent_each, expected["reasons"])
    assert got["messages"] == expected["messages"]
    assert got["events"] == expected["events"]
    # plain, defunct -> sms, opted -> sms, mandatory, held (and sent when forced)
    assert resent_batch == (6 if force else 5)
    assert len(got["reasons"]) == len(batched) - resent_batch
    assert any("has no usable channel left" in r for r in got["reasons"])
    assert any("is still being sent" in r for r in got["reasons"])
    assert any("expired at" in r for r in got["reasons"])
    held = got["messages"][-1]
    assert held[0] == Status.QUEUED and held[3] is not None and held[5][-1][-1] == held[3]
    # The due deliveries are dispatched once for the batch, the held one to run when its window opens.
    assert sorted(len(ids) for ids in dispatched) == [1, resent_batch - 1]


@pytest.mark.django_db(transaction=True)
def test_racing_resends_and_cancels_never_leave_two_live_deliveries(
    dispatched: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batched resend, the one-by-one resend and cancels on the same messages at once (PostgreSQL: real
    row locks; SQLite: its write lock)."""
    messages = [
        _as(_send("order_confirmation", f"race{n}", email=f"race{n}@example.com"), Status.FAILED) for n in range(120)
    ]
    ids = [m.pk for m in messages]
    first = {m.pk: m.deliveries.get().pk for m in messages}
    start = threading.Barrier(3)
    errors: list[BaseException] = []
    counts: dict[str, int] = {}

    def racing(body: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                start.wait()
                body()
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        return run

    def batched() -> None:
        counts["batched"] = sum(
            resend_batch(ids[begin : begin + 20], actor=None, force=False)[0] for begin in range(0, len(ids), 20)
        )

    def each() -> None:
        counts["each"] = resend_each(Message.objects.filter(pk__in=ids), actor=None, force=False)[0]

    def canceller() -> None:
        for pk in ids[::3]:
            with contextlib.suppress(CancelRefused):
                message_cancel(message=Message.objects.get(pk=pk))

    threads = [threading.Thread(target=racing(body)) for body in (batched, each, canceller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    resends = 0
    for message in messages:
        # A cancelled resend may be resent again by the other path; never two live deliveries at once.
        new = list(Delivery.objects.filter(message=message).exclude(pk=first[message.pk]))
        live = [d for d in new if d.status in ACTIVE_STATUSES]
        assert new and len(live) <= 1, (message.pk, [(d.status, d.reason) for d in new])
        assert len(new) - len(live) == sum(d.status == Status.CANCELLED for d in new)
        message.refresh_from_db()
        assert message.status == (Status.QUEUED if live else Status.CANCELLED)
        resends += len(new)
    assert resends == counts["batched"] + counts["each"]


def test_a_batch_costs_the_same_few_queries_whatever_its_size(db: None, dispatched: list[list[int]]) -> None:
    def queries_for(n: int, p: str) -> int:
        messages = [
            _as(_send("order_confirmation", f"{p}{i}", email=f"{p}{i}@example.com"), Status.FAILED) for i in range(n)
        ]
        ContactPoint.objects.create(channel="email", address=f"{p}0@example.com", state=ContactState.DEFUNCT)
        set_preference(recipient=f"{p}1", category="orders", channel="email", allowed=False)
        with CaptureQueriesContext(connection) as queries:
            resent, _ = resend_batch([m.pk for m in messages], actor=None, force=False)
        assert resent == n - 2  # neither has a phone number: no channel left
        return len(queries)

    few, many = queries_for(5, "few"), queries_for(40, "many")
    assert few == many <= 12
