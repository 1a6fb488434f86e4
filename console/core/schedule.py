"""The maintenance schedule under Huey, and the queue probe for /healthz.

This is the one module (with settings) that imports Huey: django.tasks has no periodic tasks, so the
schedule is the backend's business. Any other backend runs ``manage.py console_tick --loop`` instead.
"""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import HUEY, on_startup, periodic_task

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
