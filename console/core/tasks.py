"""Tasks of the console shell. Our code dispatches through django.tasks only."""

from __future__ import annotations

import os
import socket

from django.conf import settings
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task, task_backends
from django.utils import timezone

from console.core.models import WorkerHeartbeat


@task()
def heartbeat() -> str:
    """Record that a worker picked up a task; the dashboard and /healthz read it."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    WorkerHeartbeat.objects.update_or_create(
        worker=worker,
        defaults={
            "backend": type(task_backends[DEFAULT_TASK_BACKEND_ALIAS]).__name__,
            "seen_at": timezone.now(),
        },
    )
    return worker


if getattr(settings, "CONSOLE_TASKS", "huey") == "huey" and "huey.contrib.djhuey" in settings.INSTALLED_APPS:
    # Huey's consumer imports every app's tasks module: this registers the periodic maintenance schedule.
    from console.core import schedule  # noqa: F401
