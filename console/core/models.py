from __future__ import annotations

import os
import socket
from datetime import datetime

from django.db import models
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

    objects = WorkerHeartbeatQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.worker} @ {self.seen_at:%H:%M:%S}"

    @property
    def age_seconds(self) -> int:
        return max(0, int((timezone.now() - self.seen_at).total_seconds()))

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
