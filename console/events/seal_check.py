"""Verifying the sealed log and recording the outcome: the console's background operation and ``manage.py
events verify`` run the same ``check()``.

The request that asks for a check only records the intent (an ``Operation``); the worker body runs
``seal.verify`` chunk by chunk, reporting the events checked of the total after each chunk (where a cancel
stops it), then stores the outcome on the operation and records it as a ``log.verified`` event naming who asked.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser

from console.core.models import Operation
from console.events import seal
from console.events.declarations import LOG_VERIFIED
from console.events.pipeline import emit

KIND = "events.verify_log"


def check(*, actor: AbstractBaseUser | None, operation: Operation | None = None) -> seal.Verification:
    """Verify the log, then record who asked and what was found (a finding is a warning)."""
    report = None if operation is None else _progress_of(operation)
    result = seal.verify(after_chunk=report)
    data: dict[str, Any] = {**result.as_data(), "listed": [problem.text for problem in result.problems]}
    if operation is not None:
        data["operation_id"] = operation.pk
        # The last advance: the outcome is stored with the progress, for the operation's and the log's pages.
        operation.advance(0, outcome=result.summary(), result=data)
    emit(LOG_VERIFIED, actor=actor, **data)
    return result


def _progress_of(operation: Operation) -> seal.Progress:
    def report(events: int, total: int) -> None:
        if operation.total != total:
            operation.set_total(total)
        # Raises OperationCancelled once a cancel was asked: the check stops between chunks.
        operation.advance(events)

    return report


def run_check(operation: Operation) -> None:
    """The operation's worker body: the check, its progress reported on ``operation``, as its requester."""
    actor = operation.requested_by if isinstance(operation.requested_by, get_user_model()) else None
    check(actor=actor, operation=operation)


def latest() -> Operation | None:
    """The newest verification started from the console, for the sealed-log page."""
    return Operation.objects.filter(kind=KIND).select_related("requested_by").order_by("-pk").first()
