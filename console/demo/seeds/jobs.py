"""Finished job runs, so the run history and run pages have something to show before anyone runs a command."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from console.demo.seeds import SeedOptions
from console.events.pipeline import batch, emit
from console.jobs import declarations
from console.jobs.catalog import access_for_argv, lookup
from console.jobs.models import JobRun, OutputChunk, Status

ORDER = 20
REASON = "Demo history"

RUNS: list[tuple[str, list[str], str, str, int | None, list[tuple[str, str]], str]] = [
    (
        "demo_report",
        ["--format=json", "--tag", "monthly", "Q3 revenue", "build"],
        "--format=json --tag monthly 'Q3 revenue' build",
        Status.SUCCEEDED,
        0,
        [("out", "name: Q3 revenue\nregions: []\nformat: json\nReport ready.")],
        "",
    ),
    (
        "demo_fail",
        ["--ledger", "north"],
        "--ledger north",
        Status.FAILED,
        1,
        [
            ("out", "Reconciling ledger north…"),
            (
                "err",
                "Traceback (most recent call last):\n"
                '  File "console/demo/management/commands/demo_fail.py", line 12, in _reconcile\n'
                "ReconciliationError: ledger 'north' is out of balance by 42.00",
            ),
        ],
        "Exited with code 1.",
    ),
    (
        "demo_import",
        ["--source=legacy"],
        "--source=legacy",
        Status.CANCELLED,
        -15,
        [("out", "Importing 12 batches from legacy\nbatch 1/12 imported [##########] 100%")],
        "Stopped on request.",
    ),
    (
        "check",
        ["--deploy"],
        "--deploy",
        Status.SUCCEEDED,
        0,
        [("out", "System check identified no issues (0 silenced).")],
        "",
    ),
]


def seed(options: SeedOptions) -> str:
    if JobRun.objects.filter(reason=REASON).exists():
        return f"{JobRun.objects.filter(reason=REASON).count()} historical runs already there"
    users = get_user_model()
    user = users._default_manager.filter(**{users.USERNAME_FIELD: "ops"}).first()
    now = timezone.now()
    with transaction.atomic(), batch():
        for age, (command, argv, display, status, exit_code, chunks, note) in enumerate(RUNS, start=1):
            started = now - timedelta(days=age, minutes=5)
            access = access_for_argv(lookup(command), argv)
            run = JobRun.objects.create(
                command=command,
                app="console.demo" if command.startswith("demo_") else "django.core",
                argv=argv,
                job_class=access.job_class,
                permission=access.permission,
                argv_display=display,
                requested_by=user,
                reason=REASON,
                status=status,
                queued_at=started - timedelta(seconds=2),
                started_at=started,
                heartbeat_at=started + timedelta(seconds=30),
                finished_at=started + timedelta(seconds=31),
                exit_code=exit_code,
                note=note,
                worker_host="demo",
                last_seq=len(chunks),
                line_count=sum(text.count("\n") + 1 for _, text in chunks),
                stop_requested_by=user if status == Status.CANCELLED else None,
            )
            OutputChunk.objects.bulk_create(
                OutputChunk(run=run, seq=seq, stream=stream, text=text, lines=text.count("\n") + 1)
                for seq, (stream, text) in enumerate(chunks, start=1)
            )
            stream_id = f"job-{run.pk}"
            emit(
                declarations.JOB_QUEUED,
                actor=user,
                stream_type="job",
                stream_id=stream_id,
                run_id=run.pk,
                command=command,
                argv=argv,
                reason=REASON,
            )
            if status == Status.CANCELLED:
                emit(
                    declarations.JOB_STOPPED,
                    actor=user,
                    stream_type="job",
                    stream_id=stream_id,
                    run_id=run.pk,
                    command=command,
                    exit_code=exit_code,
                    seconds=31.0,
                )
            else:
                emit(
                    declarations.JOB_FINISHED,
                    actor=user,
                    stream_type="job",
                    stream_id=stream_id,
                    run_id=run.pk,
                    command=command,
                    status=str(status),
                    exit_code=exit_code,
                    seconds=31.0,
                    note=note,
                )
    return f"{len(RUNS)} historical runs created"
