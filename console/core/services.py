"""Write functions of the console shell: starting and cancelling background operations."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import transaction
from django.utils import timezone

from console.core.models import Operation
from console.core.registry import registry
from console.core.tasks import run_operation


def start_operation(
    kind: str,
    *,
    label: str,
    params: dict[str, Any] | None = None,
    total: int | None = None,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    url: str = "",
) -> Operation:
    """Record the intent to run ``kind`` and enqueue it once the current transaction commits.

    The caller (the app's own write function) records its audit event; this only keeps the row and the task.
    """
    if kind not in registry.operations:
        raise LookupError(f"No operation kind {kind!r} is registered.")
    operation = Operation.objects.create(
        kind=kind,
        label=label,
        params=params or {},
        total=total,
        requested_by=actor if isinstance(actor, get_user_model()) and actor.pk else None,
        url=url,
    )
    transaction.on_commit(lambda: run_operation.enqueue(operation.pk))
    return operation


def cancel_operation(operation: Operation, actor: AbstractBaseUser) -> bool:
    """Ask the operation to stop; a queued one stops at once, a running one at its next batch.

    Returns False when it had already finished or a cancel was already asked. The kind's ``on_cancel`` records
    the app's audit event naming ``actor``.
    """
    now = timezone.now()
    with transaction.atomic():
        asked = Operation.objects.unfinished().filter(pk=operation.pk, cancel_requested_at__isnull=True)
        if not asked.update(cancel_requested_at=now, updated_at=now):
            return False
        # Nobody runs a queued operation yet, so nobody else would notice the request: it ends here.
        Operation.objects.filter(pk=operation.pk, state=Operation.State.QUEUED).update(
            state=Operation.State.CANCELLED, finished_at=now
        )
        operation.refresh_from_db()
        kind = registry.operations.get(operation.kind)
        if kind is not None and kind.on_cancel is not None:
            kind.on_cancel(operation, actor)
    return True
