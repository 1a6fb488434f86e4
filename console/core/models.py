from __future__ import annotations

import os
import socket
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class WorkerHeartbeatQuerySet(models.QuerySet["WorkerHeartbeat"]):
    def latest_seen(self) -> WorkerHeartbeat | None:
        return self.order_by("-seen_at").first()

    def beat(self, *, backend: str) -> str:
        """Record that this process (host:pid) picked up a task just now; returns its name."""
        worker = f"{socket.gethostname()}:{os.getpid()}"
        now = timezone.now()
        self.update_or_create(
            worker=worker,
            defaults={"backend": backend, "seen_at": now},
            create_defaults={"backend": backend, "seen_at": now, "first_seen_at": now},
        )
        return worker

    def running(self, *, backend: str, task: str, since: datetime | None) -> None:
        """Record what this process runs now (``task`` empty: nothing) and since when; also a heartbeat.

        One UPDATE per task start and finish; the row is created only the first time a process runs a task.
        """
        worker = f"{socket.gethostname()}:{os.getpid()}"
        now = timezone.now()
        changes = {"backend": backend, "seen_at": now, "running": task[:300], "running_since": since}
        if not self.filter(worker=worker).update(**changes):
            self.update_or_create(worker=worker, defaults=changes, create_defaults={**changes, "first_seen_at": now})

    def seen_since(self, moment: datetime) -> WorkerHeartbeatQuerySet:
        """Every worker process seen since ``moment``, the most recently seen first."""
        return self.filter(seen_at__gte=moment).order_by("-seen_at")


class WorkerHeartbeat(models.Model):
    """Written by a task that a worker runs: proof that dispatch reaches a worker and back."""

    worker = models.CharField(max_length=200, unique=True, help_text="host:pid of the process that ran the task")
    backend = models.CharField(max_length=200)
    seen_at = models.DateTimeField()
    # When this process first picked up a task: roughly when it started.
    first_seen_at = models.DateTimeField(null=True, blank=True)
    # The task this process runs now (its dotted path; "" when idle) and when it started, from the task
    # backend's task_started and task_finished signals (console.core.workers).
    running = models.CharField(max_length=300, blank=True, default="")
    running_since = models.DateTimeField(null=True, blank=True)

    objects = WorkerHeartbeatQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.worker} @ {self.seen_at:%H:%M:%S}"

    @property
    def age_seconds(self) -> int:
        return max(0, int((timezone.now() - self.seen_at).total_seconds()))

    @property
    def running_seconds(self) -> int | None:
        """How long the task it runs now has been running."""
        if self.running_since is None:
            return None
        return max(0, int((timezone.now() - self.running_since).total_seconds()))

    @property
    def host(self) -> str:
        return self.worker.rpartition(":")[0] or self.worker

    @property
    def pid(self) -> str:
        return self.worker.rpartition(":")[2] if ":" in self.worker else ""


class MaintenanceTickQuerySet(models.QuerySet["MaintenanceTick"]):
    def latest_run(self) -> MaintenanceTick | None:
        return self.order_by("-ran_at").first()


class MaintenanceTick(models.Model):
    """When the maintenance tick last ran in a process: the dashboard says when the periodic duties stop."""

    runner = models.CharField(max_length=200, unique=True, help_text="host:pid of the process that ran it")
    ran_at = models.DateTimeField()
    seconds = models.FloatField(default=0)
    failed = models.JSONField(default=list, blank=True, help_text="Names of the duties that failed.")

    objects = MaintenanceTickQuerySet.as_manager()

    def __str__(self) -> str:
        return f"tick by {self.runner} @ {self.ran_at:%H:%M:%S}"

    @property
    def age_seconds(self) -> int:
        return max(0, int((timezone.now() - self.ran_at).total_seconds()))


class OperationCancelled(Exception):
    """Raised by ``Operation.advance`` in the worker once someone asked to cancel the operation."""


class OperationQuerySet(models.QuerySet["Operation"]):
    def unfinished(self) -> OperationQuerySet:
        return self.filter(state__in=[Operation.State.QUEUED, Operation.State.RUNNING])

    def stalled(self, since: datetime) -> OperationQuerySet:
        """Running operations that reported no progress since ``since``: their worker is gone."""
        return self.filter(state=Operation.State.RUNNING, updated_at__lt=since)


class Operation(models.Model):
    """One long piece of bulk work started from a page, run by a worker in batches: its progress and outcome.

    The request that starts it only records the intent (this row) and enqueues it; the worker body the app
    registered (``registry.add_operation``) does the work and reports each batch through ``advance()``.
    """

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    kind = models.CharField(max_length=100, help_text="The registered kind, such as comms.resend.")
    label = models.CharField(max_length=300, help_text="What it does, in words, as the page shows it.")
    url = models.CharField(max_length=500, blank=True, default="", help_text="The page it was started from.")
    params = models.JSONField(default=dict, blank=True, help_text="What to do, as the worker body reads it.")
    progress = models.JSONField(default=dict, blank=True, help_text="Where the worker got to (a resume cursor).")
    total = models.PositiveBigIntegerField(null=True, blank=True, help_text="Items to do, when known.")
    done = models.PositiveBigIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = OperationQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["state", "updated_at"], name="core_operation_state_idx")]

    def __str__(self) -> str:
        return f"{self.label} ({self.state})"

    @property
    def is_finished(self) -> bool:
        return self.state not in (self.State.QUEUED, self.State.RUNNING)

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, self.done * 100 // self.total)

    def advance(self, count: int = 1, **progress: Any) -> None:
        """Count ``count`` more items done and store ``progress`` (a resume cursor); stop if cancel was asked.

        One UPDATE per batch: it writes the progress only while no cancel is pending, so finding no row to
        update is how the worker learns it must stop.
        """
        self.done += count
        self.progress = {**self.progress, **progress}
        self.updated_at = timezone.now()
        written = Operation.objects.filter(Q(pk=self.pk) & Q(cancel_requested_at__isnull=True)).update(
            done=self.done, progress=self.progress, updated_at=self.updated_at
        )
        if not written:
            raise OperationCancelled(self.pk)

    def set_total(self, total: int) -> None:
        """The worker knows how many items there are only once it has looked (a filter's count)."""
        self.total = total
        Operation.objects.filter(pk=self.pk).update(total=total)
