"""The worker side of background operations: run one to its end, and notice those whose worker vanished."""

from __future__ import annotations

from datetime import timedelta

import structlog
from django.utils import timezone

from console.core.models import Operation, OperationCancelled
from console.core.registry import registry

log = structlog.get_logger(__name__)

# A running operation that reported no batch for this long lost its worker (a crash, a deploy).
LOST_AFTER = timedelta(minutes=10)


def run_operation(pk: int) -> str:
    """Claim the queued operation ``pk`` and run its kind's worker body; record how it ended.

    The claim is one conditional UPDATE, so a task delivered twice runs the operation once.
    """
    now = timezone.now()
    claimed = Operation.objects.filter(pk=pk, state=Operation.State.QUEUED, cancel_requested_at__isnull=True).update(
        state=Operation.State.RUNNING, started_at=now, updated_at=now
    )
    if not claimed:
        return "not queued"
    operation = Operation.objects.get(pk=pk)
    kind = registry.operations.get(operation.kind)
    if kind is None:
        return _finish(operation, Operation.State.FAILED, f"No operation kind {operation.kind!r} is registered.")
    try:
        kind.run(operation)
    except OperationCancelled:
        return _finish(operation, Operation.State.CANCELLED)
    except Exception as exc:
        log.exception("operation.failed", operation=operation.pk, kind=operation.kind)
        return _finish(operation, Operation.State.FAILED, f"{exc.__class__.__name__}: {exc}")
    return _finish(operation, Operation.State.SUCCEEDED)


def _finish(operation: Operation, state: Operation.State, error: str = "") -> str:
    now = timezone.now()
    Operation.objects.filter(pk=operation.pk).update(state=state, error=error, finished_at=now, updated_at=now)
    log.info("operation.finished", operation=operation.pk, kind=operation.kind, state=state, done=operation.done)
    return str(state)


def fail_lost_operations() -> str:
    """A maintenance duty: an operation whose worker stopped reporting is failed, so its page stops waiting."""
    now = timezone.now()
    lost = Operation.objects.stalled(now - LOST_AFTER).update(
        state=Operation.State.FAILED,
        error=f"Lost: no progress for {int(LOST_AFTER.total_seconds() // 60)} minutes (the worker stopped).",
        finished_at=now,
        updated_at=now,
    )
    return f"{lost} lost operations failed"
