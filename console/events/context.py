"""Context that follows work: request, correlation and causation ids, the acting user, the job run.

Bound with structlog's contextvars, so every log line and every emitted event carries it; captured at
enqueue time and restored inside the task, so an event emitted by a worker knows the request behind it.
``enqueue_on_commit()`` is how write functions hand work to a task: after the transaction commits, with
the context captured now. A task may be named by its dotted path, so the modules a task runs can enqueue
it again without importing the tasks module that imports them.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import structlog
from django.db import transaction
from django.tasks import Task
from django.utils.module_loading import import_string

# Keys that travel from a request into the tasks it enqueues and into event metadata.
CARRIED = ("request_id", "correlation_id", "causation_id", "user_id", "job_run_id", "ip")


def capture() -> dict[str, Any]:
    """The current context as a JSON-safe dict, to pass as a task argument."""
    bound = structlog.contextvars.get_contextvars()
    context = {key: bound[key] for key in CARRIED if bound.get(key) is not None}
    # A task's work is correlated with the request that caused it.
    if "correlation_id" not in context and "request_id" in context:
        context["correlation_id"] = context["request_id"]
    return context


def bound_user_id() -> int | None:
    """The user this request, task or job run acts for, if one is bound."""
    value = structlog.contextvars.get_contextvars().get("user_id")
    return value if isinstance(value, int) else None


@contextmanager
def restored(context: dict[str, Any] | None, **extra: Any) -> Iterator[None]:
    """Bind ``context`` (from ``capture()``) plus ``extra`` for the duration of a task."""
    values = {key: value for key, value in (context or {}).items() if key in CARRIED}
    values.setdefault("correlation_id", values.get("request_id") or str(uuid.uuid4()))
    values.update({key: value for key, value in extra.items() if value is not None})
    with structlog.contextvars.bound_contextvars(**values):
        yield


type TaskRef = Task[..., Any] | str


def defers(task: TaskRef) -> bool:
    """Whether ``task``'s backend queues it for a worker (and can hold it until later), not runs it inline."""
    resolved: Task[..., Any] = import_string(task) if isinstance(task, str) else task
    return bool(resolved.get_backend().supports_defer)


def enqueue(task: TaskRef, /, *args: Any, run_after: datetime | None = None, **kwargs: Any) -> bool:
    """Enqueue ``task`` now; ``False`` when it must run later and the backend cannot defer it.

    Work deferred on such a backend is not lost: the periodic tick's duties pick up whatever is due.
    """
    resolved: Task[..., Any] = import_string(task) if isinstance(task, str) else task
    if run_after is not None:
        if not defers(resolved):
            return False
        resolved = resolved.using(run_after=run_after)
    resolved.enqueue(*args, **kwargs)
    return True


def enqueue_on_commit(task: TaskRef, /, *args: Any, run_after: datetime | None = None, **kwargs: Any) -> None:
    """Enqueue ``task`` with the current context (``context=``) once the current transaction commits."""
    callback = functools.partial(enqueue, task, *args, run_after=run_after, context=capture(), **kwargs)
    transaction.on_commit(callback)
