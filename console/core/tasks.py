"""Tasks of the console shell. Our code dispatches through django.tasks only."""

from __future__ import annotations

from django.tasks import task

from console.core import backends, operations
from console.core.models import WorkerHeartbeat


@task()
def heartbeat() -> str:
    """Record that a worker picked up a task; the dashboard and /healthz read it."""
    return WorkerHeartbeat.objects.beat(backend=type(backends.default_backend()).__name__)


@task()
def run_operation(pk: int) -> str:
    """Run one background operation (a bulk resend, a replay) to its end."""
    return operations.run_operation(pk)
