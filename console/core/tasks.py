"""Tasks of the console shell. Our code dispatches through django.tasks only."""

from __future__ import annotations

import os
import socket

from django.tasks import task
from django.utils import timezone

from console.core import backends
from console.core.models import WorkerHeartbeat


@task()
def heartbeat() -> str:
    """Record that a worker picked up a task; the dashboard and /healthz read it."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    WorkerHeartbeat.objects.update_or_create(
        worker=worker,
        defaults={
            "backend": type(backends.default_backend()).__name__,
            "seen_at": timezone.now(),
        },
    )
    return worker
