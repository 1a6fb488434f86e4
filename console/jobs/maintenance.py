"""The jobs app's periodic duty: runs whose worker died are marked lost, runs never picked up are sent again."""

from __future__ import annotations

import socket
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.events.context import enqueue_on_commit
from console.events.pipeline import emit
from console.jobs import declarations
from console.jobs.conf import jobs_settings
from console.jobs.models import LIVE, JobRun, Status
from console.jobs.runner import group_alive, kill_group
from console.jobs.services import RUN_JOB


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
                declarations.JOB_LOST,
                actor=run.requested_by_id,
                **JobRun.stream_of(run.pk),
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
            enqueue_on_commit(RUN_JOB, run_id)
        requeued += 1
    return f"{lost} lost ({killed} process groups killed), {requeued} re-dispatched"
