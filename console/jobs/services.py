"""The write side of jobs: start, stop, re-run, refuse, and the reaper that calls a silent run lost."""

from __future__ import annotations

import os
import signal
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from console.events.context import capture
from console.events.pipeline import emit
from console.jobs import events
from console.jobs.catalog import CommandInfo, access_for_argv
from console.jobs.conf import jobs_settings
from console.jobs.introspect import Token, display_argv
from console.jobs.models import ACTIVE, LIVE, JobRun, Status
from console.jobs.vault import seal


class JobConflict(Exception):
    """The command may not run twice at once and a run of it is already queued or running."""


def _enqueue(run_id: int) -> None:
    from console.jobs.tasks import run_job

    context = capture()
    transaction.on_commit(lambda: run_job.enqueue(run_id, context=context))


def _present(**fields: Any) -> dict[str, Any]:
    """The optional event fields that have a value."""
    return {name: value for name, value in fields.items() if value not in (None, "")}


def job_start(
    *,
    actor: AbstractBaseUser,
    info: CommandInfo,
    tokens: list[Token],
    reason: str = "",
    form_data: dict[str, Any] | None = None,
    rerun_of: JobRun | None = None,
) -> JobRun:
    """Queue a run of ``info`` with the parser-validated ``tokens``; the worker starts it after commit.

    Secret values are sealed (encrypted) apart from ``argv``, which holds them masked; the run is filed under
    the class its arguments put it in, which decides who may read its output.
    """
    conf = jobs_settings()
    exclusive = conf.is_exclusive(info.name)
    access = access_for_argv(info, [t.value for t in tokens])
    secrets = {i: t.value for i, t in enumerate(tokens) if t.secret}
    with transaction.atomic():
        if exclusive and JobRun.objects.filter(command=info.name, status__in=ACTIVE).exists():
            raise JobConflict(f"{info.name} is already queued or running, and may not run twice at once.")
        run = JobRun.objects.create(
            command=info.name,
            app=info.app,
            argv=[t.display for t in tokens],
            argv_display=display_argv(tokens),
            secret_indexes=sorted(secrets),
            sealed_secrets=seal(secrets),
            job_class=access.job_class,
            permission=access.permission,
            form_data=form_data or {},
            requested_by=actor,  # type: ignore[misc]  # the console's users are auth.User
            reason=reason,
            rerun_of=rerun_of,
            exclusive=exclusive,
            timeout_seconds=conf.timeout_for(info.name),
        )
        emit(
            events.JOB_QUEUED,
            actor=actor,
            stream_type="job",
            stream_id=f"job-{run.pk}",
            run_id=run.pk,
            command=info.name,
            argv=[t.display for t in tokens],
            job_class=access.job_class.value,
            reason=reason,
            **_present(permission=access.permission, rerun_of=rerun_of.pk if rerun_of else None),
        )
        _enqueue(run.pk)
    return run


def rerun_tokens(run: JobRun) -> list[Token]:
    """The run's command line again, secrets unsealed (``Unsealable`` when SECRET_KEY changed since)."""
    secret = set(run.secret_indexes)
    return [Token(value, i in secret) for i, value in enumerate(run.real_argv())]


def job_rerun(*, actor: AbstractBaseUser, run: JobRun, info: CommandInfo, reason: str = "") -> JobRun:
    """Queue the same command line again, secrets included (kept sealed to run it the first time)."""
    tokens = rerun_tokens(run)
    return job_start(
        actor=actor, info=info, tokens=tokens, reason=reason or run.reason, form_data=run.form_data, rerun_of=run
    )


def job_stop(*, actor: AbstractBaseUser, run: JobRun) -> JobRun:
    """Ask a run to stop: a queued run is cancelled at once; a running one is signalled by its runner."""
    with transaction.atomic():
        now = timezone.now()
        cancelled = JobRun.objects.filter(pk=run.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=now, stop_requested_by=actor, note="Cancelled before it started."
        )
        if not cancelled:
            JobRun.objects.filter(pk=run.pk, status=Status.RUNNING).update(
                status=Status.CANCELLING, stop_requested_by=actor
            )
        run.refresh_from_db()
        emit(
            events.JOB_STOP_REQUESTED,
            actor=actor,
            stream_type="job",
            stream_id=f"job-{run.pk}",
            run_id=run.pk,
            command=run.command,
            status=run.status,
        )
    return run


def job_deny(*, actor: AbstractBaseUser, command: str, why: str, run: JobRun | None = None) -> None:
    """Record a refused attempt to run a command, or to read or stop a run (the view then answers 403)."""
    with transaction.atomic():
        emit(events.JOB_DENIED, actor=actor, command=command[:100], why=why, **_present(run_id=run.pk if run else None))


# --- the reaper: a tick duty -----------------------------------------------------------------------------


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting for a reaper do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def reap_lost_runs() -> str:
    """Mark runs whose heartbeat stopped ``lost`` and kill their process group when it is on this host.

    Also re-dispatches runs that were committed but never claimed (their task was lost before a worker saw
    it); the claim is conditional, so a run delivered twice still runs once.
    """
    conf = jobs_settings()
    stale_after = timedelta(seconds=conf.lost_after_seconds)
    host = socket.gethostname()
    lost = killed = 0
    for run in JobRun.objects.stale(older_than=stale_after):
        with transaction.atomic():
            marked = JobRun.objects.filter(pk=run.pk, status__in=LIVE, heartbeat_at=run.heartbeat_at).update(
                status=Status.LOST,
                finished_at=timezone.now(),
                note=f"No heartbeat since {run.heartbeat_at:%Y-%m-%d %H:%M:%S} UTC: its worker stopped.",
            )
            if not marked:
                continue
            child_killed = False
            if run.child_pid and run.worker_host == host and group_alive(run.child_pid):
                child_killed = kill_group(run.child_pid)
            emit(
                events.JOB_LOST,
                actor=run.requested_by_id,
                stream_type="job",
                stream_id=f"job-{run.pk}",
                run_id=run.pk,
                command=run.command,
                worker_host=run.worker_host,
                heartbeat_at=run.heartbeat_at.isoformat() if run.heartbeat_at else "",
                child_killed=child_killed,
            )
        lost += 1
        killed += int(child_killed)
    requeued = 0
    for run_id in JobRun.objects.unclaimed(older_than=stale_after).values_list("pk", flat=True)[:100]:
        with transaction.atomic():
            JobRun.objects.filter(pk=run_id, status=Status.QUEUED).update(queued_at=timezone.now())
            _enqueue(run_id)
        requeued += 1
    return f"{lost} lost ({killed} process groups killed), {requeued} re-dispatched"
