"""What the site's task backend can do, asked of the backend itself: the apps work with any ``django.tasks`` one.

The console needs to know three things the Tasks framework does not say directly: whether work runs inline
(in the request, no worker needed), whether it runs at all (the dummy backend only records it), and how much
waits in the queue and for how long, which only some backends can tell.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol, cast

from django.apps import apps
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.backends.dummy import DummyBackend
from django.tasks.backends.immediate import ImmediateBackend

HUEY_BACKEND = "huey.contrib.djhuey.tasks_backend.HueyBackend"
DATABASE_BACKEND = "django_tasks_db.backend.DatabaseBackend"
# Named, not imported: django-tasks-db is the site's choice, not a dependency of the console.
DATABASE_RESULTS = ("django_tasks_db", "DBTaskResult")


def default_backend() -> BaseTaskBackend:
    # default_task_backend is a proxy: ask the handler for the real backend object.
    return task_backends[DEFAULT_TASK_BACKEND_ALIAS]


def backend_path() -> str:
    backend = type(default_backend())
    return f"{backend.__module__}.{backend.__qualname__}"


def runs_inline() -> bool:
    """Tasks run inside the request that enqueues them: nothing waits, and no worker is needed."""
    return isinstance(default_backend(), ImmediateBackend)


def never_runs() -> bool:
    """Tasks are recorded and never run: jobs and messages would wait for ever."""
    return isinstance(default_backend(), DummyBackend)


def uses_huey() -> bool:
    return backend_path() == HUEY_BACKEND


class _QueueProbes(Protocol):
    def queue_depth(self) -> int: ...

    def oldest_waiting(self) -> datetime | None: ...


def _huey() -> _QueueProbes:
    """Huey's probes (``console.core.schedule``), imported only when Huey is the backend: it is an optional
    dependency."""
    from console.core import schedule

    return schedule


def queue_depth() -> int | None:
    """Tasks waiting to run, where the backend can tell; ``None`` where it cannot. Raises if unreachable."""
    path = backend_path()
    if path == HUEY_BACKEND:
        return _huey().queue_depth()
    if path == DATABASE_BACKEND and apps.is_installed("django_tasks_db"):
        results: Any = apps.get_model(*DATABASE_RESULTS)
        return int(results.objects.ready().count())
    return None


def oldest_waiting() -> datetime | None:
    """When the task that has waited longest became due, where the backend can tell (Huey, the database
    backend); ``None`` where it cannot or nothing waits. Raises if the queue is unreachable."""
    path = backend_path()
    if path == HUEY_BACKEND:
        return _huey().oldest_waiting()
    if path == DATABASE_BACKEND and apps.is_installed("django_tasks_db"):
        results: Any = apps.get_model(*DATABASE_RESULTS)
        oldest = results.objects.ready().order_by("enqueued_at").values_list("enqueued_at", flat=True).first()
        return cast(datetime | None, oldest)
    return None
