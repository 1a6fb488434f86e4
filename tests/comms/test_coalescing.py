"""Single sends as cheap as batches: dispatches close together share a task, and a worker thread keeps its
SMTP connection from one task to the next, reopening it when the server dropped it, never sending twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.tasks import default_task_backend

from console.comms import delivery, sending
from console.comms.classes import lookup
from console.comms.delivery import deliver_batch, deliver_due
from console.comms.models import Delivery, Message, Status
from console.comms.sending import send
from tests.comms.smtp import SMTPServer

Capture = Callable[..., Any]


def order() -> Any:
    cls = lookup("order_confirmation")
    assert cls is not None
    return cls.sample()


@pytest.fixture
def recorded_tasks(settings: Any) -> list[Any]:
    """A backend that records tasks (and can defer them)."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    default_task_backend.clear()  # type: ignore[attr-defined]
    return default_task_backend.results  # type: ignore[attr-defined,no-any-return]


def comms_tasks(results: list[Any]) -> list[Any]:
    return [result for result in results if result.task.module_path.startswith("console.comms.")]


def test_sends_in_separate_transactions_close_together_become_a_sweep_now_and_one_at_the_windows_end(
    smtp: SMTPServer, recorded_tasks: list[Any], db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    for n in range(6):
        with django_capture_on_commit_callbacks(execute=True):
            send(order(), to=f"one{n}@example.com")
    tasks = comms_tasks(recorded_tasks)
    assert [(result.task.name, result.task.run_after is None) for result in tasks] == [
        ("sweep", True),
        ("sweep", False),
    ]
    assert deliver_due() == {"sent": 6}  # the first sweep sends what was committed while it ran, too
    assert deliver_due() == {}
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    assert sorted(len(smtp.handler.to(f"one{n}@example.com")) for n in range(6)) == [1] * 6


def test_a_sweep_takes_a_share_at_a_time_until_none_is_due_and_a_full_first_share_recruits_one_more(
    smtp: SMTPServer, recorded_tasks: list[Any], monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    monkeypatch.setattr(delivery, "SWEEP_SHARE", 2)
    claims: list[int] = []
    real_claim = delivery.claim

    def claim(*args: Any, **kwargs: Any) -> list[Delivery]:
        claimed = real_claim(*args, **kwargs)
        claims.append(len(claimed))
        return claimed

    monkeypatch.setattr(delivery, "claim", claim)
    for n in range(5):
        send(order(), to=f"due{n}@example.com")  # no commit here: nothing is dispatched
    assert deliver_due() == {"sent": 5}
    assert claims == [2, 2, 1, 0]
    assert [result.task.name for result in comms_tasks(recorded_tasks)] == ["sweep"]  # another thread joins
    send(order(), to="late@example.com")
    assert deliver_due() == {"sent": 1}
    assert len(comms_tasks(recorded_tasks)) == 1  # a share that is not full recruits nobody
    assert Delivery.objects.filter(status=Status.SENT).count() == 6


def test_a_sweep_still_finding_work_after_its_time_hands_on_to_a_fresh_task(
    smtp: SMTPServer, recorded_tasks: list[Any], monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    monkeypatch.setattr(delivery, "SWEEP_SHARE", 2)
    monkeypatch.setattr(delivery, "SWEEP_SECONDS", 0.0)
    for n in range(5):
        send(order(), to=f"slow{n}@example.com")
    assert deliver_due() == {"sent": 2}
    assert [result.task.name for result in comms_tasks(recorded_tasks)] == ["sweep", "sweep"]  # recruit, hand-on
    assert Delivery.objects.filter(status=Status.QUEUED).count() == 3


def test_under_an_inline_backend_a_sweep_sends_a_backlog_itself_without_recursing(
    smtp: SMTPServer, inline_tasks: None, monkeypatch: pytest.MonkeyPatch, db: None
) -> None:
    monkeypatch.setattr(delivery, "SWEEP_SHARE", 2)
    monkeypatch.setattr(delivery, "SWEEP_SECONDS", 0.0)
    monkeypatch.setattr(sending, "sweep_now", lambda: pytest.fail("an inline sweep enqueued another"))
    for n in range(7):
        send(order(), to=f"inline{n}@example.com")  # no commit here: nothing is dispatched
    assert deliver_due() == {"sent": 7}


def test_inline_backends_and_big_transactions_are_dispatched_as_they_are(
    smtp: SMTPServer, recorded_tasks: list[Any], settings: Any, db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.CONSOLE_COMMS = {"BATCH_SIZE": 3}
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            for n in range(3):
                send(order(), to=f"big{n}@example.com")
    assert [len(result.kwargs["delivery_ids"]) for result in comms_tasks(recorded_tasks)] == [3, 3]


def test_a_worker_thread_reuses_its_connection_across_tasks_and_reopens_a_dropped_one(
    smtp: SMTPServer, db: None
) -> None:
    messages = [send(order(), to=f"reuse{n}@example.com") for n in range(3)]
    ids = [m.deliveries.get().pk for m in messages]
    assert deliver_batch([ids[0]]) == {"sent": 1}
    assert deliver_batch([ids[1]]) == {"sent": 1}
    peers = [a.peer for a in smtp.handler.accepted]
    assert peers[0] == peers[1], "the second task should have used the first task's connection"
    smtp.restart()  # the server drops the idle connection
    assert deliver_batch([ids[2]]) == {"sent": 1}
    assert smtp.handler.accepted[2].peer != peers[0]
    assert [len(smtp.handler.to(f"reuse{n}@example.com")) for n in range(3)] == [1, 1, 1]
