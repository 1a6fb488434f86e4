"""The worker body of bulk stops and re-runs: the runs taken, in batches, resumable from the last one done."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import CommandError
from django.db import transaction

from console.core.models import Operation
from console.jobs import catalog
from console.jobs.catalog import UnknownCommand
from console.jobs.filters import bulk_targets
from console.jobs.models import JobRun
from console.jobs.services import JobConflict, job_rerun, job_stop
from console.jobs.vault import Unsealable

BATCH = 100


def run_bulk(operation: Operation) -> None:
    """Stop or re-run every run the operation took, as the user who asked, skipping those they may not act on.

    Each batch ends with ``advance()``, which stores the last run done (so a restarted operation goes on from
    there) and stops the loop once someone cancelled.
    """
    params = operation.params
    action = str(params["action"])
    if operation.requested_by_id is None:
        raise ValueError("The user who asked for this was deleted: nobody to act as.")
    actor = get_user_model()._default_manager.get(pk=operation.requested_by_id)
    runs = bulk_targets(actor, action=action, query=str(params.get("query", "")), ids=params.get("ids"))
    runs = runs.filter(pk__lte=int(params["up_to"])).order_by("pk")
    cursor = int(operation.progress.get("cursor", 0))
    skipped = int(operation.progress.get("skipped", 0))
    while batch := list(runs.filter(pk__gt=cursor)[:BATCH]):
        for run in batch:
            skipped += not _act(actor, action, run)
        cursor = batch[-1].pk
        operation.advance(len(batch), cursor=cursor, skipped=skipped)


def _act(actor: AbstractBaseUser, action: str, run: JobRun) -> bool:
    """Act on one run; False when this user may not, or the run cannot be repeated as it was."""
    if action == "stop":
        if run.access.missing(actor):  # type: ignore[arg-type]  # the console's users are auth.User
            return False
        job_stop(actor=actor, run=run)
        return True
    try:
        info = catalog.lookup(run.command)
    except UnknownCommand:
        return False
    if catalog.denial(actor, info, run.access) is not None:  # type: ignore[arg-type]
        return False
    try:
        with transaction.atomic():
            job_rerun(actor=actor, run=run, info=info)
    except (JobConflict, Unsealable, CommandError):
        return False
    return True
