"""Scheduled sends (send_at) and cancelling queued, scheduled or claimed messages, in code and in the console."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.comms import delivery as delivery_module
from console.comms import sending
from console.comms.classes import MessageError, lookup
from console.comms.delivery import claim, deliver_batch
from console.comms.models import Delivery, Message, Status
from console.comms.sending import Recipient, send
from console.comms.services import CancelRefused, message_cancel
from console.events.models import Event
from tests.comms.smtp import SMTPServer

Capture = Callable[..., Any]


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def to(n: int | str) -> Recipient:
    return Recipient(f"u{n}", email=f"u{n}@example.com")


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[int], datetime | None]]:
    calls: list[tuple[list[int], datetime | None]] = []
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: calls.append((list(ids), run_after)))
    monkeypatch.setattr(sending, "dispatch_soon", lambda ids: calls.append((list(ids), None)))
    return calls


# --- scheduled sends ------------------------------------------------------------------------------------------


def test_a_send_at_in_the_past_sends_now(
    db: None, django_capture_on_commit_callbacks: Capture, dispatched: Any
) -> None:
    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=to(1), send_at=before - timedelta(days=3))
    assert message.send_at >= before and message.expires_at >= before + timedelta(days=2)
    assert dispatched == [([message.deliveries.get().pk], None)]


def test_a_scheduled_message_waits_and_is_claimed_at_its_time(
    db: None, django_capture_on_commit_callbacks: Capture, dispatched: Any
) -> None:
    at = timezone.now() + timedelta(hours=3)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=to(1), send_at=at)
    delivery = message.deliveries.get()
    assert delivery.next_attempt_at == at and message.expires_at == at + timedelta(days=2)
    assert dispatched == [([delivery.pk], at)]
    assert claim(None) == []
    assert [d.pk for d in claim(None, now=at + timedelta(seconds=1))] == [delivery.pk]


@pytest.mark.usefixtures("inline_tasks")
def test_a_scheduled_send_goes_out_at_its_time(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    at = timezone.now() + timedelta(seconds=1.5)
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=to(1), send_at=at)
    assert deliver_batch() == {} and smtp.handler.to("u1@example.com") == []
    time.sleep(max(0.0, (at - timezone.now()).total_seconds()) + 0.05)
    assert deliver_batch() == {"sent": 1}
    assert len(smtp.handler.to("u1@example.com")) == 1
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_a_send_at_at_or_after_the_expiry_is_refused(db: None) -> None:
    at = timezone.now() + timedelta(days=2)
    with pytest.raises(MessageError, match="is not before the message's expiry"):
        send(order(), to=to(1), send_at=at, expires_at=at - timedelta(hours=1))
    with pytest.raises(MessageError, match="timezone-aware"):
        send(order(), to=to(1), send_at=datetime(2030, 1, 1))
    assert not Message.objects.exists()


# --- cancel in code -----------------------------------------------------------------------------------------


def test_cancel_stops_a_scheduled_message_and_names_the_actor(db: None, operator: User, dispatched: Any) -> None:
    message = send(order(), to=to(1), send_at=timezone.now() + timedelta(hours=1))
    assert message_cancel(message=message, actor=operator) == 1
    message.refresh_from_db()
    assert message.status == Status.CANCELLED
    assert message.deliveries.get().status == Status.CANCELLED
    event = Event.objects.get(type="message.cancelled")
    assert event.actor_id == operator.pk and event.data["message_id"] == message.pk
    assert claim(None, now=timezone.now() + timedelta(days=1)) == []
    with pytest.raises(CancelRefused, match="already cancelled"):
        message_cancel(message=message, actor=operator)


@pytest.mark.usefixtures("inline_tasks")
def test_a_sent_message_cannot_be_cancelled(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        message = send(order(), to=to(1))
    with pytest.raises(CancelRefused, match="nothing to cancel"):
        message_cancel(message=message)
    message.refresh_from_db()
    assert message.status == Status.SENT


def test_a_worker_that_claimed_a_message_skips_it_once_cancelled(
    smtp: SMTPServer, db: None, monkeypatch: pytest.MonkeyPatch, dispatched: Any
) -> None:
    kept, dropped = send(order(), to=to("kept")), send(order(), to=to("dropped"))
    real_claim = claim

    def claim_then_cancel(*args: Any, **kwargs: Any) -> list[Delivery]:
        claimed = real_claim(*args, **kwargs)
        assert {d.status for d in claimed} == {Status.SENDING}
        message_cancel(message=dropped)  # staff cancel between the worker's claim and its send
        return claimed

    monkeypatch.setattr(delivery_module, "claim", claim_then_cancel)
    assert deliver_batch() == {"sent": 1}
    assert [a.recipients for a in smtp.handler.accepted] == [["ukept@example.com"]]
    dropped.refresh_from_db()
    kept.refresh_from_db()
    assert dropped.status == Status.CANCELLED and kept.status == Status.SENT
    assert dropped.deliveries.get().handed_at is None


@pytest.mark.django_db(transaction=True)
def test_cancel_racing_workers_never_sends_a_cancelled_message(
    smtp: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers claim and send while staff cancel; on PostgreSQL the claim, hand-over and cancel truly overlap."""
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: None)
    messages = [send(order(), to=to(n)) for n in range(60)]
    outcome: dict[int, str] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def worker() -> None:
        try:
            start.wait()
            while deliver_batch(limit=3):
                pass
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def canceller() -> None:
        try:
            start.wait()
            for msg in random.Random(7).sample(messages, len(messages)):
                try:
                    message_cancel(message=msg)
                except CancelRefused:
                    outcome[msg.pk] = "refused"
                else:
                    outcome[msg.pk] = "cancelled"
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker), threading.Thread(target=worker), threading.Thread(target=canceller)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    received = [r for accepted in smtp.handler.accepted for r in accepted.recipients]
    assert len(received) == len(set(received))  # nothing sent twice
    for msg in messages:
        msg.refresh_from_db()
        address = msg.addresses["email"]
        if outcome[msg.pk] == "cancelled":
            assert address not in received and msg.status == Status.CANCELLED, msg.pk
        else:
            assert address in received and msg.status == Status.SENT, msg.pk
    assert "cancelled" in outcome.values()


# --- cancel in the console ------------------------------------------------------------------------------------


def test_the_message_page_cancels_with_the_permission(
    client: Client, staff_with: Callable[..., User], dispatched: Any
) -> None:
    message = send(order(), to=to(1), send_at=timezone.now() + timedelta(hours=1))
    looker = staff_with()
    client.force_login(looker)
    page = client.get(reverse("comms:message", args=[message.pk])).content.decode()
    assert "Scheduled for" in page and "Cancel this message" not in page
    assert client.post(reverse("comms:message_cancel", args=[message.pk])).status_code == 403
    canceller = staff_with("comms.cancel_message")
    client.force_login(canceller)
    assert "Cancel this message" in client.get(reverse("comms:message", args=[message.pk])).content.decode()
    response = client.post(reverse("comms:message_cancel", args=[message.pk]), follow=True)
    assert f"Message #{message.pk} cancelled; it will not be sent." in response.content.decode()
    assert Event.objects.get(type="message.cancelled").actor_id == canceller.pk
    again = client.post(reverse("comms:message_cancel", args=[message.pk]), follow=True)
    assert "Not cancelled: message #" in again.content.decode()


def test_bulk_cancel_cancels_the_selected_and_reports_the_rest(client: Client, operator: User, dispatched: Any) -> None:
    queued = [send(order(), to=to(n)) for n in range(3)]
    done = send(order(), to=to("sent"))
    Message.objects.filter(pk=done.pk).update(status=Status.SENT)
    Delivery.objects.filter(message=done).update(status=Status.SENT)
    client.force_login(operator)
    ids = [m.pk for m in [*queued[:2], done]]
    response = client.post(reverse("comms:messages_cancel"), {"ids": ids, "query": "status=queued"}, follow=True)
    assert "2 message(s) cancelled; 1 not cancelled" in response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("comms:messages") + "?status=queued"
    assert set(Message.objects.filter(status=Status.CANCELLED).values_list("pk", flat=True)) == {
        queued[0].pk,
        queued[1].pk,
    }
    assert Event.objects.filter(type="message.cancelled", actor=operator).count() == 2
    empty = client.post(reverse("comms:messages_cancel"), {"ids": ["x"]}, follow=True)
    assert "Select at least one message to cancel." in empty.content.decode()
