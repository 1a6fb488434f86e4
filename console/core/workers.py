"""What each worker process runs now, for the dashboard's workers table.

Django's task signals (``task_started``, ``task_finished``) are sent by the process that runs the task: Huey's
``HueyBackend`` and django-tasks-db's ``db_worker`` send them, so one receiver covers both. A process may run
several tasks at once (Huey's thread workers): it keeps them here and records the one that started first,
with "and N more". An inline backend runs tasks inside a web request, which is no worker: it is not recorded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from django.db import DatabaseError
from django.tasks.backends.immediate import ImmediateBackend
from django.tasks.signals import task_finished, task_started
from django.utils import timezone

from console.core.models import WorkerHeartbeat

log = structlog.get_logger(__name__)

_lock = threading.Lock()
# Task result id -> (dotted path, when it started), for the tasks this process runs now.
_running: dict[str, tuple[str, datetime]] = {}


def summary(running: dict[str, tuple[str, datetime]]) -> tuple[str, datetime | None]:
    """The task that started first (with how many more run beside it) and when it started."""
    if not running:
        return "", None
    path, since = min(running.values(), key=lambda item: item[1])
    more = len(running) - 1
    return (f"{path} and {more} more" if more else path), since


def _backend(sender: Any) -> type:
    # db_worker sends the backend object on start and its class on finish; Huey sends the class.
    return sender if isinstance(sender, type) else type(sender)


def _update(sender: Any, change: Callable[[dict[str, tuple[str, datetime]]], bool]) -> None:
    backend = _backend(sender)
    if issubclass(backend, ImmediateBackend):
        return
    # Written under the lock, so two threads of one process never store their summaries out of order.
    with _lock:
        if not change(_running):
            return
        task, since = summary(_running)
        try:
            WorkerHeartbeat.objects.running(backend=backend.__name__, task=task, since=since)
        except DatabaseError as exc:
            # A receiver's error would fail the task it reports on: the table is worth less than the task.
            log.warning("could not record the running task", error=f"{exc.__class__.__name__}: {exc}")


def on_started(sender: Any, task_result: Any, **kwargs: Any) -> None:
    def add(running: dict[str, tuple[str, datetime]]) -> bool:
        running[str(task_result.id)] = (task_result.task.module_path, task_result.started_at or timezone.now())
        return True

    _update(sender, add)


def on_finished(sender: Any, task_result: Any, **kwargs: Any) -> None:
    _update(sender, lambda running: running.pop(str(task_result.id), None) is not None)


def connect() -> None:
    task_started.connect(on_started, dispatch_uid="console.core.workers.started")
    task_finished.connect(on_finished, dispatch_uid="console.core.workers.finished")
