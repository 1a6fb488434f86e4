"""Single sends as cheap as batches: dispatches close together share a task, and a worker thread keeps its
SMTP connection from one task to the next, reopening it when the server dropped it, never sending twice."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.tasks import default_task_backend

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


def test_sends_in_separate_transactions_close_together_become_one_task_and_one_sweep(
    smtp: SMTPServer, recorded_tasks: list[Any], db: None, django_capture_on_commit_callbacks: Capture
) -> None:
    for n in range(6):
        with django_capture_on_commit_callbacks(execute=True):
            send(order(), to=f"one{n}@example.com")
    tasks = comms_tasks(recorded_tasks)
    assert [result.task.name for result in tasks] == ["deliver", "sweep"]
    first, sweep = tasks
    assert len(first.kwargs["delivery_ids"]) == 1 and sweep.task.run_after is not None
    deliver_batch(first.kwargs["delivery_ids"])
    assert deliver_due() == {"sent": 5}
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    assert sorted(len(smtp.handler.to(f"one{n}@example.com")) for n in range(6)) == [1] * 6


def test_a_sweep_that_finds_a_full_batch_hands_the_rest_to_another_task_first(
    smtp: SMTPServer, recorded_tasks: list[Any], settings: Any, db: None
) -> None:
    settings.CONSOLE_COMMS = {"BATCH_SIZE": 2}
    for n in range(5):
        send(order(), to=f"due{n}@example.com")  # no commit here: nothing is dispatched
    assert deliver_due() == {"sent": 2}
    assert [result.task.name for result in comms_tasks(recorded_tasks)] == ["sweep"]
    assert deliver_due() == {"sent": 2} and deliver_due() == {"sent": 1}
    assert [result.task.name for result in comms_tasks(recorded_tasks)] == ["sweep", "sweep"]
    assert Delivery.objects.filter(status=Status.SENT).count() == 5


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
