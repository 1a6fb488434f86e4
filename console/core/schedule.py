"""The maintenance schedule under Huey, and the queue probes for /healthz and the dashboard.

This is the one module (with settings) that imports Huey: django.tasks has no periodic tasks, so the
schedule is the backend's business. Any other backend runs ``manage.py console_tick --loop`` instead.
"""

from __future__ import annotations

from datetime import datetime

from huey import crontab
from huey.contrib.djhuey import HUEY, on_startup, periodic_task
from huey.contrib.djhuey.tasks_backend import KEY as RESULT_KEY

from console.core.tasks import heartbeat
from console.core.tick import run_tick


@periodic_task(crontab(minute="*"), name="console.tick")  # type: ignore[untyped-decorator]
def periodic_tick() -> None:
    heartbeat.call()
    run_tick()


@on_startup()  # type: ignore[untyped-decorator]
def announce_worker() -> None:
    heartbeat.call()


def queue_depth() -> int:
    """Tasks waiting in the Huey queue; raises if the queue's storage cannot be reached."""
    return int(HUEY.pending_count())


# How far down the queue to look for a task that django.tasks enqueued: Huey's own periodic tick records no
# enqueue time.
HEAD = 20


def oldest_waiting() -> datetime | None:
    """When the next django.tasks task in line became due (enqueued, or its ``run_after`` when later).

    Huey's queue is first in, first out, so that is the task that has waited longest (under a priority queue,
    the one served next). The time is the backend's own record of the task; ``None`` when none waits.
    """
    for task in HUEY.pending(HEAD):
        record = HUEY.get(RESULT_KEY % task.id, peek=True)
        if isinstance(record, dict) and record.get("enqueued_at"):
            due = [datetime.fromisoformat(record[name]) for name in ("enqueued_at", "run_after") if record.get(name)]
            return max(due)
    return None
