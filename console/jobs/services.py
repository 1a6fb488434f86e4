"""The write side of jobs: start, approve or reject, stop, re-run, refuse; create, change, pause, resume and run
schedules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from console.core.models import Operation
from console.core.services import start_operation
from console.events.context import enqueue_on_commit
from console.events.pipeline import emit
from console.jobs import declarations
from console.jobs.access import Access
from console.jobs.catalog import CommandInfo, access_for_argv
from console.jobs.conf import jobs_settings
from console.jobs.introspect import Token, display_argv
from console.jobs.models import ACTIVE, CommandLine, JobRun, Schedule, Source, Status
from console.jobs.vault import seal

# The task that runs a job, named rather than imported: the tasks module imports the runner, and the reaper
# sends unclaimed runs to it again.
RUN_JOB = "console.jobs.tasks.run_job"


class JobConflict(Exception):
    """The command may not run twice at once and a run of it is already queued or running."""


class DecisionRefused(Exception):
    """An approval or rejection that may not happen: one's own request, or a run no longer awaiting approval."""


def _present(**fields: Any) -> dict[str, Any]:
    """The optional event fields that have a value."""
    return {name: value for name, value in fields.items() if value not in (None, "")}


def command_line(info: CommandInfo, tokens: list[Token]) -> dict[str, Any]:
    """A ``CommandLine``'s fields for ``info`` run with the parser-validated ``tokens``.

    Secret values are sealed (encrypted) apart from ``argv``, which holds them masked; the line is filed
    under the class its arguments put it in, which decides who may read its runs' output.
    """
    access = access_for_argv(info, [t.value for t in tokens])
    secrets = {i: t.value for i, t in enumerate(tokens) if t.secret}
    return {
        "command": info.name,
        "app": info.app,
        "argv": [t.display for t in tokens],
        "argv_display": display_argv(tokens),
        "secret_indexes": sorted(secrets),
        "sealed_secrets": seal(secrets),
        "job_class": access.job_class,
        "permission": access.permission,
    }


def job_queued(run: JobRun, *, actor: AbstractBaseUser | int | None, dispatch: bool = True) -> None:
    """Record a queued (or awaiting approval) run in the log and (unless the caller dispatches a batch itself)
    hand a queued one to a worker once the transaction commits."""
    emit(
        declarations.JOB_QUEUED,
        actor=actor,
        **JobRun.stream_of(run.pk),
        run_id=run.pk,
        command=run.command,
        argv=run.argv,
        job_class=run.job_class,
        reason=run.reason,
        **_present(
            permission=run.permission,
            rerun_of=run.rerun_of_id,
            schedule=run.schedule.name if run.schedule else None,
            due_at=run.due_at.isoformat() if run.due_at else None,
            awaiting_approval=(run.status == Status.AWAITING) or None,
            dry_run_of=run.dry_run_of_id,
        ),
    )
    # A run awaiting approval is handed to a worker when someone approves it, never before.
    if dispatch and run.status != Status.AWAITING:
        enqueue_on_commit(RUN_JOB, run.pk)


def job_start(
    *,
    actor: AbstractBaseUser,
    info: CommandInfo,
    tokens: list[Token],
    reason: str = "",
    form_data: dict[str, Any] | None = None,
    rerun_of: JobRun | None = None,
    schedule: Schedule | None = None,
    dry_run_flag: str = "",
    dry_run_of: JobRun | None = None,
) -> JobRun:
    """Queue a run of ``info`` with the parser-validated ``tokens``; the worker starts it after commit."""
    conf = jobs_settings()
    exclusive = conf.is_exclusive(info.name)
    fields = command_line(info, tokens)
    needs_approval = conf.needs_approval(info.name, Access(fields["job_class"], fields["permission"]))
    with transaction.atomic():
        if exclusive and JobRun.objects.filter(command=info.name, status__in=ACTIVE).exists():
            raise JobConflict(f"{info.name} is already queued or running, and may not run twice at once.")
        run = JobRun.objects.create(  # type: ignore[misc]  # the console's users are auth.User
            **fields,
            form_data=form_data or {},
            requested_by=actor,
            reason=reason,
            rerun_of=rerun_of,
            schedule=schedule,
            dry_run_flag=dry_run_flag,
            dry_run_of=dry_run_of,
            exclusive=exclusive,
            timeout_seconds=conf.timeout_for(info.name),
            needs_approval=needs_approval,
            status=Status.AWAITING if needs_approval else Status.QUEUED,
        )
        job_queued(run, actor=actor)
    return run


def _undecidable(run: JobRun, actor: AbstractBaseUser) -> str | None:
    """Why ``actor`` may not decide on ``run`` as it is now, or None when they may."""
    if run.requested_by_id == actor.pk:
        return f"Run #{run.pk} is your own request: another staff user must approve or reject it."
    if run.status == Status.AWAITING:
        return None
    if not run.needs_approval:
        return f"Run #{run.pk} did not need approval."
    when = f" at {run.decided_at:%Y-%m-%d %H:%M:%S}" if run.decided_at else ""
    who = run.decided_by or "a since deleted user"
    if run.status == Status.REJECTED:
        return f"Run #{run.pk} was already rejected by {who}{when}: it can no longer be approved or rejected."
    if run.decided_at is None:
        return f"Run #{run.pk} was withdrawn ({run.status}) before anyone approved it."
    return f"Run #{run.pk} was already approved by {who}{when}."


def _decide(*, actor: AbstractBaseUser, run: JobRun, approve: bool, reason: str) -> JobRun:
    with transaction.atomic():
        # The current row, locked, so two people deciding at once cannot both succeed. Only the run's own row:
        # PostgreSQL refuses FOR UPDATE on the nullable side of the decided_by outer join.
        run = JobRun.objects.select_for_update(of=("self",)).select_related("decided_by").get(pk=run.pk)
        why = _undecidable(run, actor)
        if why is not None:
            raise DecisionRefused(why)
        now = timezone.now()
        run.decided_by = actor  # type: ignore[assignment]  # the console's users are auth.User
        run.decided_at = now
        run.decision_reason = reason
        if approve:
            # The reaper counts an unclaimed run's wait from its queueing: that is now, not the request.
            run.status, run.queued_at = Status.QUEUED, now
        else:
            run.status, run.finished_at = Status.REJECTED, now
            run.note = f"Rejected by {actor}{': ' + reason if reason else '.'}"
        run.save(
            update_fields=["decided_by", "decided_at", "decision_reason", "status", "queued_at", "finished_at", "note"]
        )
        emit(
            declarations.JOB_APPROVED if approve else declarations.JOB_REJECTED,
            actor=actor,
            **JobRun.stream_of(run.pk),
            run_id=run.pk,
            command=run.command,
            requested_by=run.requested_by_id,
            **_present(reason=reason),
        )
        if approve:
            enqueue_on_commit(RUN_JOB, run.pk)
    return run


def job_approve(*, actor: AbstractBaseUser, run: JobRun, reason: str = "") -> JobRun:
    """Let a run that awaits approval start; ``DecisionRefused`` for one's own run or one already decided."""
    return _decide(actor=actor, run=run, approve=True, reason=reason)


def job_reject(*, actor: AbstractBaseUser, run: JobRun, reason: str = "") -> JobRun:
    """Refuse a run that awaits approval for good; ``DecisionRefused`` as for ``job_approve``."""
    return _decide(actor=actor, run=run, approve=False, reason=reason)


def rerun_tokens(line: CommandLine) -> list[Token]:
    """A run's (or schedule's) command line again, secrets unsealed (``Unsealable`` when SECRET_KEY changed)."""
    secret = set(line.secret_indexes)
    return [Token(value, i in secret) for i, value in enumerate(line.real_argv())]


def job_rerun(*, actor: AbstractBaseUser, run: JobRun, info: CommandInfo, reason: str = "") -> JobRun:
    """Queue the same command line again, secrets included (kept sealed to run it the first time)."""
    tokens = rerun_tokens(run)
    return job_start(
        actor=actor, info=info, tokens=tokens, reason=reason or run.reason, form_data=run.form_data, rerun_of=run
    )


def for_real_tokens(run: JobRun) -> list[Token]:
    """A dry run's command line without its dry-run flag, secrets unsealed (``Unsealable`` as for a re-run)."""
    return [token for token in rerun_tokens(run) if token.value != run.dry_run_flag]


def job_run_for_real(*, actor: AbstractBaseUser, run: JobRun, info: CommandInfo, reason: str = "") -> JobRun:
    """Queue a finished dry run's command line again without its dry-run flag, linked to the dry run.

    The secrets go along sealed, as for a re-run; a command that needs approval needs it for the real run too.
    """
    # The flag's field is named after its argparse dest, which is the option's name unless the parser says
    # otherwise; form_data only prefills an edited re-run, so a flag missed here is a checked box, no more.
    field = run.dry_run_flag.lstrip("-").replace("-", "_")
    form_data = {name: value for name, value in run.form_data.items() if name != field}
    return job_start(
        actor=actor,
        info=info,
        tokens=for_real_tokens(run),
        reason=reason or run.reason,
        form_data=form_data,
        dry_run_of=run,
    )


def job_stop(*, actor: AbstractBaseUser, run: JobRun) -> JobRun:
    """Ask a run to stop: a queued run is cancelled at once; a running one is signalled by its runner."""
    with transaction.atomic():
        now = timezone.now()
        cancelled = JobRun.objects.filter(pk=run.pk, status__in=[Status.AWAITING, Status.QUEUED]).update(
            status=Status.CANCELLED, finished_at=now, stop_requested_by=actor, note="Cancelled before it started."
        )
        if not cancelled:
            JobRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
                status=Status.CANCELLING, stop_requested_by=actor
            )
        run.refresh_from_db()
        emit(
            declarations.JOB_STOP_REQUESTED,
            actor=actor,
            **JobRun.stream_of(run.pk),
            run_id=run.pk,
            command=run.command,
            status=run.status,
        )
    return run


def job_deny(*, actor: AbstractBaseUser, command: str, why: str, run: JobRun | None = None) -> None:
    """Record a refused attempt to run a command, or to read or stop a run (the view then answers 403)."""
    with transaction.atomic():
        emit(
            declarations.JOB_DENIED,
            actor=actor,
            command=command[:100],
            why=why,
            **_present(run_id=run.pk if run else None),
        )


class ReadOnlySchedule(Exception):
    """The schedule is defined in the site's settings: change it there."""


@dataclass(frozen=True)
class When:
    """A schedule's timing and policies, as its form cleaned them."""

    cron: str = ""
    interval_seconds: int | None = None
    time_zone: str = "UTC"
    overlap: str = "skip"
    missed: str = "run-once"


def schedule_save(
    *,
    actor: AbstractBaseUser | None,
    name: str,
    info: CommandInfo,
    tokens: list[Token],
    when: When,
    reason: str = "",
    form_data: dict[str, Any] | None = None,
    schedule: Schedule | None = None,
    source: Source = Source.CONSOLE,
    enabled: bool = True,
) -> Schedule:
    """Create a schedule (``schedule`` None) or change one; its next run is worked out from now.

    A schedule from settings changes only through the settings sync (``source=SETTINGS``).
    """
    if schedule is not None and schedule.read_only and source != Source.SETTINGS:
        raise ReadOnlySchedule(f"{schedule.name} is defined in the site's settings: change it there.")
    now = timezone.now()
    created = schedule is None
    with transaction.atomic():
        if schedule is None:
            schedule = Schedule(created_by=actor, source=source, enabled=enabled)  # type: ignore[misc]  # the console's users are auth.User
        elif (schedule.cron, schedule.interval_seconds) != (when.cron, when.interval_seconds):
            schedule.anchor_at = now  # a new interval counts from when it was set
        for field, value in command_line(info, tokens).items():
            setattr(schedule, field, value)
        schedule.name = name
        schedule.form_data = form_data or {}
        schedule.reason = reason
        schedule.cron = when.cron
        schedule.interval_seconds = when.interval_seconds
        schedule.time_zone = when.time_zone
        schedule.overlap = when.overlap
        schedule.missed = when.missed
        if created and when.interval_seconds:
            schedule.anchor_at = now
        schedule.next_run_at = schedule.next_after(now) if schedule.enabled else None
        schedule.save()
        emit(
            declarations.SCHEDULE_SAVED,
            actor=actor,
            schedule_id=schedule.pk,
            name=schedule.name,
            command=schedule.command,
            argv=schedule.argv,
            when=schedule.when,
            created=created,
            enabled=schedule.enabled,
            overlap=schedule.overlap,
            missed=schedule.missed,
            source=schedule.source,
        )
    return schedule


def schedule_pause(*, actor: AbstractBaseUser, schedule: Schedule) -> Schedule:
    """Stop creating runs for ``schedule``; a run already going goes on."""
    with transaction.atomic():
        if Schedule.objects.filter(pk=schedule.pk, enabled=True).update(enabled=False, next_run_at=None):
            emit(declarations.SCHEDULE_PAUSED, actor=actor, schedule_id=schedule.pk, name=schedule.name)
    schedule.refresh_from_db()
    return schedule


def schedule_resume(*, actor: AbstractBaseUser, schedule: Schedule) -> Schedule:
    """Create runs again from the next due time after now: times that passed while paused are not missed."""
    with transaction.atomic():
        next_run_at = schedule.next_after(timezone.now())
        if Schedule.objects.filter(pk=schedule.pk, enabled=False).update(enabled=True, next_run_at=next_run_at):
            emit(
                declarations.SCHEDULE_RESUMED,
                actor=actor,
                schedule_id=schedule.pk,
                name=schedule.name,
                next_run_at=_iso(next_run_at),
            )
    schedule.refresh_from_db()
    return schedule


def schedule_run_now(*, actor: AbstractBaseUser, schedule: Schedule, info: CommandInfo) -> JobRun:
    """Queue a run of the schedule's command line at once, outside its times (its next run stays due)."""
    return job_start(
        actor=actor,
        info=info,
        tokens=rerun_tokens(schedule),
        reason=schedule.reason or f"Run now: schedule {schedule.name}",
        form_data=schedule.form_data,
        schedule=schedule,
    )


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


# The operation kind of bulk stops and re-runs (registered in apps.py).
BULK = "jobs.bulk"
BULK_VERBS = {"stop": "Stop", "rerun": "Re-run"}


def job_bulk(
    *, actor: AbstractBaseUser, action: str, query: str, ids: list[int] | None, count: int, up_to: int, url: str
) -> Operation:
    """Record a bulk stop or re-run of ``count`` runs as one audited action; a worker acts on them after commit.

    ``up_to`` is the newest run counted when the user confirmed: runs queued since (a re-run's own runs
    among them) are not taken, so "re-run all failed" cannot chase its own tail.
    """
    with transaction.atomic():
        operation = start_operation(
            BULK,
            label=f"{BULK_VERBS[action]} {count:,} run{'s' if count != 1 else ''}",
            params={"action": action, "query": query, "ids": ids, "up_to": up_to},
            total=count,
            actor=actor,
            url=url,
        )
        emit(
            declarations.JOB_BULK_REQUESTED,
            actor=actor,
            action=action,
            count=count,
            operation_id=operation.pk,
            **_present(filter=query, run_ids=ids[:100] if ids else None),
        )
    return operation


def job_bulk_cancelled(operation: Operation, actor: AbstractBaseUser) -> None:
    """The operation's ``on_cancel``: the cancel is audited as the request was, naming who cancelled."""
    emit(
        declarations.JOB_BULK_CANCELLED,
        actor=actor,
        action=str(operation.params.get("action", "")),
        operation_id=operation.pk,
        done=operation.done,
    )
