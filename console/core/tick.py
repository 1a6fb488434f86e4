"""The maintenance tick: every app's periodic duties, run from one entry point."""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta

import structlog
from django.db import DatabaseError
from django.utils import timezone

from console.core.models import MaintenanceTick, WorkerHeartbeat
from console.core.registry import registry

log = structlog.get_logger(__name__)


def run_tick() -> dict[str, object]:
    """Run each registered duty once; one failing duty is logged and never stops the others."""
    results: dict[str, object] = {}
    failed: list[str] = []
    began = time.perf_counter()
    for duty in registry.duties:
        started = time.perf_counter()
        try:
            results[duty.name] = duty.run()
        except Exception as exc:
            log.exception("tick.duty_failed", duty=duty.name)
            results[duty.name] = f"failed: {exc.__class__.__name__}: {exc}"
            failed.append(duty.name)
        else:
            log.debug("tick.duty_done", duty=duty.name, seconds=round(time.perf_counter() - started, 3))
    try:
        MaintenanceTick.objects.update_or_create(
            runner=f"{socket.gethostname()}:{os.getpid()}",
            defaults={"ran_at": timezone.now(), "seconds": round(time.perf_counter() - began, 3), "failed": failed},
        )
    except DatabaseError:
        log.exception("tick.not_recorded")
    return results


# Heartbeat and tick rows of processes that stopped this long ago are forgotten.
FORGET_AFTER = timedelta(days=1)


def forget_stopped_processes() -> str:
    """Delete the heartbeat and tick rows of processes long gone: one row per process would grow for ever."""
    cutoff = timezone.now() - FORGET_AFTER
    workers, _ = WorkerHeartbeat.objects.filter(seen_at__lt=cutoff).delete()
    ticks, _ = MaintenanceTick.objects.filter(ran_at__lt=cutoff).delete()
    return f"{workers} worker and {ticks} tick records forgotten"
