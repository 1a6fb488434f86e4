"""Tasks of the jobs app: a thin shim that restores the context and runs the job."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.events.context import restored
from console.jobs.runner import execute


@task()
def run_job(run_id: int, context: dict[str, Any] | None = None) -> str:
    with restored(context, job_run_id=run_id):
        return execute(run_id)
