"""The write side of jobs: start, approve or reject, stop, re-run, refuse."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from console.events.context import enqueue_on_commit
from console.events.pipeline import emit
from console.jobs import declarations
from console.jobs.catalog import CommandInfo, access_for_argv
from console.jobs.conf import jobs_settings
from console.jobs.introspect import Token, display_argv
from console.jobs.models import ACTIVE, JobRun, Status
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


def job_start(
    *,
    actor: AbstractBaseUser,
    info: CommandInfo,
    tokens: list[Token],
    reason: str = "",
    form_data: dict[str, Any] | None = None,
    rerun_of: JobRun | None = None,
    dry_run_flag: str = "",
    dry_run_of: JobRun | None = None,
) -> JobRun:
    """Queue a run of ``info`` with the parser-validated ``tokens``; the worker starts it after commit.

    Secret values are sealed (encrypted) apart from ``argv``, which holds them masked; the run is filed under
    the class its arguments put it in, which decides who may read its output.
    """
    conf = jobs_settings()
    exclusive = conf.is_exclusive(info.name)
    access = access_for_argv(info, [t.value for t in tokens])
    needs_approval = conf.needs_approval(info.name, access)
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
            dry_run_flag=dry_run_flag,
            dry_run_of=dry_run_of,
            exclusive=exclusive,
            timeout_seconds=conf.timeout_for(info.name),
            needs_approval=needs_approval,
            status=Status.AWAITING if needs_approval else Status.QUEUED,
        )
        emit(
            declarations.JOB_QUEUED,
            actor=actor,
            **JobRun.stream_of(run.pk),
            run_id=run.pk,
            command=info.name,
            argv=[t.display for t in tokens],
            job_class=access.job_class.value,
            reason=reason,
            **_present(
                permission=access.permission,
                rerun_of=rerun_of.pk if rerun_of else None,
                awaiting_approval=needs_approval or None,
                dry_run_of=dry_run_of.pk if dry_run_of else None,
            ),
        )
        if not needs_approval:
            enqueue_on_commit(RUN_JOB, run.pk)
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
        # The current row, locked, so two people deciding at once cannot both succeed.
        run = JobRun.objects.select_for_update().select_related("decided_by").get(pk=run.pk)
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
