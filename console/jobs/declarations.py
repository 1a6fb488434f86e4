"""The job lifecycle in the event log: who queued, stopped or was refused which command, and how runs ended."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from console.events.catalog import Metric, declare
from console.events.rollups import Tally, count

STATUSES = ("succeeded", "failed", "cancelled", "lost")

JOB_QUEUED = declare(
    "job.queued",
    description="A user queued a management command as a job.",
    required={"run_id", "command", "argv"},
    optional={
        "reason",
        "rerun_of",
        "job_class",
        "permission",
        "schedule",
        "due_at",
        "awaiting_approval",
        "dry_run_of",
    },
    audit=True,
    metrics=[Metric("console_jobs_queued_total", "counter", "Jobs queued.")],
)
JOB_APPROVED = declare(
    "job.approved",
    description="A second staff user approved a run that awaited approval; it is queued to start.",
    required={"run_id", "command", "requested_by"},
    optional={"reason"},
    audit=True,
)
JOB_REJECTED = declare(
    "job.rejected",
    description="A second staff user rejected a run that awaited approval; it never starts.",
    required={"run_id", "command", "requested_by"},
    optional={"reason"},
    audit=True,
)
JOB_STARTED = declare(
    "job.started",
    description="A worker claimed a queued job and started its process.",
    required={"run_id", "command", "worker_host", "worker_pid", "child_pid"},
)
JOB_FINISHED = declare(
    "job.finished",
    description="A job's process exited on its own (successfully or not).",
    required={"run_id", "command", "status", "exit_code", "seconds"},
    optional={"note", "lines"},
    metrics=[
        Metric(
            "console_jobs_finished_total",
            "counter",
            "Jobs that ended, by final status.",
            labels=("status",),
            allowed={"status": STATUSES},
        ),
        Metric("console_job_seconds", "histogram", "How long jobs ran.", value_field="seconds"),
    ],
)
JOB_STOP_REQUESTED = declare(
    "job.stop_requested",
    description="A user asked to stop a job.",
    required={"run_id", "command", "status"},
    audit=True,
)
JOB_STOPPED = declare(
    "job.stopped",
    description="A job was stopped at a user's request.",
    required={"run_id", "command", "exit_code"},
    optional={"seconds", "lines"},
)
JOB_LOST = declare(
    "job.lost",
    description="A running job stopped heartbeating (its worker died) and was marked lost.",
    required={"run_id", "command", "worker_host", "heartbeat_at"},
    optional={"child_killed"},
    level="warning",
)
JOB_DENIED = declare(
    "job.denied",
    description=(
        "A user tried to run a command they may not run, or that never runs from the console, or to read or "
        "stop a run of one."
    ),
    required={"command", "why"},
    optional={"run_id"},
    level="warning",
    audit=True,
)
SCHEDULE_SAVED = declare(
    "schedule.saved",
    description="A user created or changed a job schedule, or the site's settings did (no actor).",
    required={"schedule_id", "name", "command", "argv", "when"},
    optional={"created", "enabled", "overlap", "missed", "source"},
    audit=True,
)
SCHEDULE_PAUSED = declare(
    "schedule.paused",
    description="A user paused a job schedule: it creates no runs until resumed.",
    required={"schedule_id", "name"},
    audit=True,
)
SCHEDULE_RESUMED = declare(
    "schedule.resumed",
    description="A user resumed a paused job schedule; times missed while paused are skipped.",
    required={"schedule_id", "name", "next_run_at"},
    audit=True,
)
SCHEDULE_REMOVED = declare(
    "schedule.removed",
    description="A schedule defined in settings was removed from them, so its row went too.",
    required={"schedule_id", "name"},
    audit=True,
)
SCHEDULE_SKIPPED = declare(
    "schedule.skipped",
    description="A schedule's due time passed without a run: its last run was still going, or it was missed.",
    required={"schedule_id", "name", "due_at", "why"},
)
JOB_BULK_REQUESTED = declare(
    "job.bulk_requested",
    description="A user asked to stop or re-run many runs at once (selected, or all matching a filter).",
    required={"action", "count", "operation_id"},
    optional={"filter", "run_ids"},
    audit=True,
)
JOB_BULK_CANCELLED = declare(
    "job.bulk_cancelled",
    description="A user cancelled a bulk stop or re-run before it had acted on every run.",
    required={"action", "operation_id", "done"},
    audit=True,
)


# What the charts count (console.events.rollups): runs by how they ended, and per command with their durations.
RUNS = "jobs.runs"
RUNS_BY_COMMAND = "jobs.command"
FAILED_BY_COMMAND = "jobs.command_failed"


def run_tallies(data: Mapping[str, Any]) -> Iterator[Tally]:
    status = str(data.get("status", "cancelled"))
    status = status if status in STATUSES else "cancelled"
    seconds = data.get("seconds")
    value = float(seconds) if isinstance(seconds, int | float) and not isinstance(seconds, bool) else None
    command = str(data.get("command", ""))
    yield RUNS, status, value
    yield RUNS_BY_COMMAND, command, value
    if status in ("failed", "lost"):
        yield FAILED_BY_COMMAND, command, None


def lost_tallies(data: Mapping[str, Any]) -> Iterator[Tally]:
    return run_tallies({**data, "status": "lost"})


count(JOB_FINISHED.name, run_tallies)
count(JOB_STOPPED.name, run_tallies)
count(JOB_LOST.name, lost_tallies)
