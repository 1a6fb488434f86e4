"""The schedules' periodic duty: sync the schedules defined in settings, then create the runs that are due.

Every web and worker process may run the tick at the same moment. A due time becomes a run exactly once
because the run's row carries ``(schedule, due_at)`` under a unique constraint: a second tick's insert of
the same pair fails (on PostgreSQL it waits for the first tick's transaction, then fails) and that tick moves
on. Nothing is locked, so a tick that dies half-way leaves nothing behind: the next one finds the same
schedules due and the same constraint keeps it from doubling what was committed.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models.constants import OnConflict
from django.utils import timezone

from console.events.context import enqueue, enqueue_on_commit
from console.events.pipeline import batch, emit
from console.jobs import catalog, declarations
from console.jobs.catalog import UnknownCommand
from console.jobs.conf import JobsSettings, jobs_settings
from console.jobs.introspect import Token
from console.jobs.models import ACTIVE, JobRun, Missed, Overlap, Schedule, Source, Status
from console.jobs.services import RUN_JOB, When, job_queued, schedule_save

# Due schedules handled per transaction: small enough that a racing tick waits briefly, large enough that
# 1,000 schedules due in one minute take a handful of commits.
BATCH = 250
# Due schedules one tick takes on; the rest wait for the next tick (a minute later).
LIMIT = 10_000
# The task that hands a tick's batch of runs to the queue, named as the services name theirs.
DISPATCH_RUNS = "console.jobs.tasks.dispatch_runs"


@dataclass
class Tally:
    created: int = 0
    skipped: int = 0
    taken: int = 0  # another tick created the run first

    def __str__(self) -> str:
        return f"{self.created} scheduled runs created, {self.skipped} skipped, {self.taken} already created"


def schedule_tick(now: datetime | None = None) -> str:
    """The tick's duty: settings first, so a schedule added there is due in the same tick."""
    synced = sync_settings_schedules()
    return f"{synced}; {create_due_runs(now)}"


def create_due_runs(now: datetime | None = None) -> Tally:
    """Create a run for every schedule whose next time has come, or skip it as its policies say."""
    now = now or timezone.now()
    conf = jobs_settings()
    tally = Tally()
    due = list(Schedule.objects.due(now).select_related("created_by").order_by("pk")[:LIMIT])
    if not due:
        return tally
    active = JobRun.objects.filter(status__in=ACTIVE)
    busy = set(active.filter(schedule_id__in=[s.pk for s in due]).values_list("schedule_id", flat=True))
    busy_commands = set(active.values_list("command", flat=True).distinct())
    for start in range(0, len(due), BATCH):
        # One transaction per batch: its runs in one INSERT, its events in one more, the schedules in one UPDATE.
        with batch():
            runs: list[JobRun] = []
            for schedule in due[start : start + BATCH]:
                run_for, why = _decide(schedule, now=now, conf=conf, busy=busy, busy_commands=busy_commands)
                if run_for is None:
                    _skip(schedule, now=now, why=why, tally=tally)
                else:
                    runs.append(_new_run(schedule, run_for, conf))
            created = _insert_new(runs)
            tally.taken += len(runs) - len(created)
            tally.created += len(created)
            # Schedules due together mostly move on together: one UPDATE per (next time, due time), where a
            # bulk_update's CASE over 250 rows costs more to build than the rest of the batch.
            moves: dict[tuple[datetime | None, datetime], list[int]] = defaultdict(list)
            for run in created:
                assert run.schedule is not None and run.due_at is not None
                moves[run.schedule.next_after(now), run.due_at].append(run.schedule.pk)
                busy.add(run.schedule.pk)
                job_queued(run, actor=None, dispatch=False)
            for (next_run_at, last_due_at), pks in moves.items():
                Schedule.objects.filter(pk__in=pks).update(next_run_at=next_run_at, last_due_at=last_due_at)
            if queued := [run.pk for run in created if run.status == Status.QUEUED]:
                # One task hands the batch's runs to the queue: 250 enqueues would cost the tick more than the rest.
                # Runs awaiting approval are left out: approving one enqueues it.
                enqueue_on_commit(DISPATCH_RUNS, queued)
    return tally


def _decide(
    schedule: Schedule, *, now: datetime, conf: JobsSettings, busy: set[int], busy_commands: set[str]
) -> tuple[datetime | None, str]:
    """The due time to create a run for (None: skip) and, when skipping, why."""
    due_at = schedule.next_run_at
    assert due_at is not None  # due() asked for it
    run_for: datetime | None = due_at
    if now - due_at > timedelta(seconds=conf.missed_after_seconds):
        if schedule.missed == Missed.SKIP:
            return None, f"missed: due at {due_at:%Y-%m-%d %H:%M:%S} UTC, seen at {now:%H:%M:%S}"
        # However many times were missed, one run stands for them all: the newest.
        run_for = schedule.last_until(now) or due_at
    if schedule.overlap == Overlap.SKIP and schedule.pk in busy:
        return None, "its last run was still awaiting approval, queued or running"
    if conf.is_exclusive(schedule.command) and schedule.command in busy_commands:
        return None, f"{schedule.command} may not run twice at once and a run of it is going"
    return run_for, ""


def _new_run(schedule: Schedule, due_at: datetime, conf: JobsSettings) -> JobRun:
    # A scheduled run of a command that needs approval waits for it like any other run of that command.
    needs_approval = conf.needs_approval(schedule.command, schedule.access)
    return JobRun(
        command=schedule.command,
        app=schedule.app,
        argv=schedule.argv,
        argv_display=schedule.argv_display,
        secret_indexes=schedule.secret_indexes,
        sealed_secrets=schedule.sealed_secrets,
        job_class=schedule.job_class,
        permission=schedule.permission,
        form_data=schedule.form_data,
        requested_by=schedule.created_by,
        reason=schedule.reason or f"Schedule {schedule.name}",
        schedule=schedule,
        due_at=due_at,
        exclusive=conf.is_exclusive(schedule.command),
        timeout_seconds=conf.timeout_for(schedule.command),
        queued_at=timezone.now(),
        needs_approval=needs_approval,
        status=Status.AWAITING if needs_approval else Status.QUEUED,
    )


def _insert_new(runs: list[JobRun]) -> list[JobRun]:
    """Insert ``runs``, leaving out each whose (schedule, due time) exists; the ones inserted, with their ids.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING`` (PostgreSQL, SQLite 3.35+) says which rows this
    transaction inserted; a row another tick inserted first is skipped, after waiting for that tick's
    transaction when it is still open. ``bulk_create(ignore_conflicts=True)`` runs the same statement but
    drops the answer, hence the queryset's ``_insert``.
    """
    if not runs:
        return []
    fields = [f for f in JobRun._meta.concrete_fields if not f.primary_key]
    returned = JobRun.objects._insert(  # type: ignore[attr-defined]  # Django's bulk insert, with its answer kept
        runs,
        fields=fields,
        returning_fields=[JobRun._meta.pk, JobRun._meta.get_field("schedule")],
        on_conflict=OnConflict.IGNORE,
    )
    by_schedule = {run.schedule_id: run for run in runs}
    created = []
    for pk, schedule_id in returned:
        run = by_schedule[schedule_id]
        run.pk = pk
        run._state.adding = False
        created.append(run)
    return created


def _skip(schedule: Schedule, *, now: datetime, why: str, tally: Tally) -> None:
    """Move the schedule past a due time without a run: the conditional update decides which tick records it."""
    due_at = schedule.next_run_at
    moved = Schedule.objects.filter(pk=schedule.pk, next_run_at=due_at).update(
        next_run_at=schedule.next_after(now), last_skipped_at=due_at, skip_note=why[:500]
    )
    if not moved:
        tally.taken += 1
        return
    tally.skipped += 1
    emit(
        declarations.SCHEDULE_SKIPPED,
        schedule_id=schedule.pk,
        name=schedule.name,
        due_at=due_at.isoformat() if due_at else "",
        why=why,
    )


def dispatch(run_ids: list[int]) -> str:
    """The worker's half of a tick's batch: one ``run_job`` task per run (its claim makes a repeat harmless)."""
    for run_id in run_ids:
        enqueue(RUN_JOB, run_id)
    return f"{len(run_ids)} scheduled runs dispatched"


# The fingerprint of the settings last synced by this process: the sync's parser work is done once per change.
_synced: dict[str, str] = {}


def sync_settings_schedules() -> str:
    """Make the rows of settings-defined schedules match ``CONSOLE_JOBS["SCHEDULES"]``.

    A schedule's pause (from the console) survives a sync; ``enabled`` in settings is its state when created.
    A schedule whose command or arguments the command's parser refuses is left out and reported.
    """
    conf = jobs_settings()
    fingerprint = hashlib.sha256(json.dumps(conf.schedules, sort_keys=True, default=str).encode()).hexdigest()
    if _synced.get("fingerprint") == fingerprint:
        return "settings schedules unchanged"
    existing = {s.name: s for s in Schedule.objects.filter(source=Source.SETTINGS)}
    saved, refused = 0, []
    for name, spec in conf.schedules.items():
        try:
            info = catalog.lookup(str(spec.get("command", "")), conf)
            tokens = [Token(str(arg)) for arg in spec.get("args", [])]
            catalog.access_for_argv(info, [t.value for t in tokens])
        except UnknownCommand:
            refused.append(f"{name} (no command {spec.get('command')!r})")
            continue
        except Exception as exc:  # the parser's CommandError, or a command whose module cannot load
            refused.append(f"{name} ({exc.__class__.__name__}: {exc})")
            continue
        if (why := catalog.refusal(info, conf)) is not None:
            refused.append(f"{name} ({info.name} is {why})")
            continue
        when = When(
            cron=str(spec.get("cron") or ""),
            interval_seconds=spec.get("interval"),
            time_zone=str(spec.get("timezone", "UTC")),
            overlap=str(spec.get("overlap", Overlap.SKIP)),
            missed=str(spec.get("missed", Missed.RUN_ONCE)),
        )
        current = existing.pop(name, None)
        if current is not None and _unchanged(current, info.name, tokens, when, str(spec.get("reason", ""))):
            continue
        if current is None and Schedule.objects.filter(name=name).exists():
            refused.append(f"{name} (a schedule made in the console has that name)")
            continue
        schedule_save(
            actor=None,
            name=name,
            info=info,
            tokens=tokens,
            when=when,
            reason=str(spec.get("reason", "")),
            schedule=current,
            source=Source.SETTINGS,
            enabled=bool(spec.get("enabled", True)),
        )
        saved += 1
    for gone in existing.values():
        with transaction.atomic():
            emit(declarations.SCHEDULE_REMOVED, schedule_id=gone.pk, name=gone.name)
            gone.delete()
    if not refused:
        _synced["fingerprint"] = fingerprint
    summary = f"{saved} settings schedules saved, {len(existing)} removed"
    return summary + (f", refused: {'; '.join(refused)}" if refused else "")


def _unchanged(schedule: Schedule, command: str, tokens: list[Token], when: When, reason: str) -> bool:
    return (
        schedule.command == command
        and schedule.argv == [t.value for t in tokens]
        and (schedule.cron, schedule.interval_seconds, schedule.time_zone)
        == (when.cron, when.interval_seconds, when.time_zone)
        and (schedule.overlap, schedule.missed, schedule.reason) == (when.overlap, when.missed, reason)
    )
