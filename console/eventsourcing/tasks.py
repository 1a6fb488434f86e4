"""Tasks of the eventsourcing app: thin shims that restore the context and run the worker code."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.events.context import restored
from console.eventsourcing.replay import run_rebuild


@task()
def rebuild_projection(run_id: int, context: dict[str, Any]) -> str:
    """Replay the log into a rebuild's generation; resumes from the run's cursor if it ran before."""
    with restored(context):
        return run_rebuild(run_id)
