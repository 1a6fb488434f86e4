"""Tasks of the jobs app: thin shims that restore the context and call the worker code."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.events.context import restored
from console.jobs.runner import execute
from console.jobs.scheduler import dispatch


@task()
def run_job(run_id: int, context: dict[str, Any] | None = None) -> str:
    with restored(context, job_run_id=run_id):
        return execute(run_id)


@task()
def dispatch_runs(run_ids: list[int], context: dict[str, Any] | None = None) -> str:
    with restored(context):
        return dispatch(run_ids)
