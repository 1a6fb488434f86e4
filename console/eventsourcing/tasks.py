"""Tasks of the eventsourcing app, dispatched through django.tasks."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.events.context import restored


@task()
def rebuild_projection(run_id: int, context: dict[str, Any]) -> str:
    """Replay the log into a rebuild's generation; resumes from the run's cursor if it ran before."""
    from console.eventsourcing.rebuild import run_rebuild

    with restored(context):
        return run_rebuild(run_id)
