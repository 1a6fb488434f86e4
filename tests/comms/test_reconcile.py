"""Nothing is lost when the worker dies (done-when 2): the reconciler finishes what a crash left behind."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from console.comms import delivery, sending
from console.comms.classes import lookup
from console.comms.maintenance import reconcile
from console.comms.models import Attempt, Delivery, Message, Status
from console.comms.sending import send
from console.events.models import Event
from tests.comms.smtp import ACCEPT_DROP, SMTPServer

pytestmark = pytest.mark.usefixtures("inline_tasks")
Capture = Callable[..., Any]


class WorkerKilled(BaseException):
    """Stands for the worker process dying: not an Exception, so no handler in our code catches it."""


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


def addresses(n: int) -> list[str]:
    return [f"r{i}@example.com" for i in range(n)]


def test_messages_committed_but_never_dispatched_are_sent_by_the_reconciler(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(delivery_ids: list[int], run_after: Any = None) -> None:
        raise WorkerKilled

    monkeypatch.setattr(sending, "dispatch", crash)
    with pytest.raises(WorkerKilled), django_capture_on_commit_callbacks(execute=True):
        for address in addresses(5):
            send(order(), to=address)
    assert Delivery.objects.filter(status=Status.QUEUED).count() == 5
    monkeypatch.undo()

    # Too young to be called stuck: the queue may still be on its way.
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile().startswith("0 re-dispatched")
    Delivery.objects.update(next_attempt_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile().startswith("5 re-dispatched")
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    for address in addresses(5):
        assert len(smtp.handler.to(address)) == 1


def test_a_worker_killed_between_claim_and_send_loses_nothing_and_duplicates_at_most_the_cut_one(
    smtp: SMTPServer, db: None, django_capture_on_commit_callbacks: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    dispatched: list[list[int]] = []
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: dispatched.append(ids))
    with django_capture_on_commit_callbacks(execute=True):
        for address in addresses(5):
            send(order(), to=address)
    monkeypatch.undo()
    assert len(dispatched) == 1 and len(dispatched[0]) == 5

    # The third message's SMTP transaction is cut: the server keeps it, the worker dies before the reply.
    smtp.handler.script_data("r2@example.com", ACCEPT_DROP)
    real_record, real_mark = delivery.record_outcome, delivery.mark_sent
    marked: list[int] = []

    def die_at_r2(real: Callable[..., None]) -> Callable[..., None]:
        def wrapper(row: Delivery, outcome: Any, **kwargs: Any) -> None:
            if row.address == "r2@example.com":
                raise WorkerKilled
            marked.append(row.pk)
            real(row, outcome, **kwargs)

        return wrapper

    monkeypatch.setattr(delivery, "record_outcome", die_at_r2(real_record))
    monkeypatch.setattr(delivery, "mark_sent", die_at_r2(real_mark))
    with pytest.raises(WorkerKilled):
        delivery.deliver_batch(dispatched[0])
    monkeypatch.undo()
    assert len(marked) == 2
    assert Delivery.objects.filter(status=Status.SENDING).count() == 3  # claimed, never finished
    # Sent and durable, but the worker died before writing their attempts and events.
    assert Message.objects.filter(status=Status.SENDING).count() == 5

    # A second worker given the same ids sends nothing: the rows are claimed.
    assert delivery.deliver_batch(dispatched[0]) == {}

    with django_capture_on_commit_callbacks(execute=True):
        assert reconcile().startswith("0 re-dispatched")  # the lease has not run out yet
    Delivery.objects.filter(status=Status.SENDING).update(claimed_at=timezone.now() - timedelta(hours=1))
    Delivery.objects.filter(status=Status.SENT).update(sent_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        summary = reconcile()
    assert summary == "3 re-dispatched, 3 stale claim(s) released, 2 sent delivery(ies) recorded"
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    assert Event.objects.filter(type="message.sent").count() == 5
    assert Attempt.objects.filter(outcome="sent").count() == 5
    copies = {address: len(smtp.handler.to(address)) for address in addresses(5)}
    assert copies == {
        "r0@example.com": 1,
        "r1@example.com": 1,
        "r2@example.com": 2,
        "r3@example.com": 1,
        "r4@example.com": 1,
    }
