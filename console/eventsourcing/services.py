"""The eventsourcing app's write functions: start, cancel, resume and promote rebuilds; pause projections.

Each changes rows inside ``transaction.atomic()``, emits the event naming the actor, and hands the replay to
its task after commit (``console.eventsourcing.replay`` is what the task runs).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from console.core.inputs import representable_time
from console.events.context import enqueue_on_commit
from console.events.models import Event
from console.events.pipeline import emit
from console.events.reader import Cursor, uses_xid
from console.events.subscriptions import notify_appended
from console.events.subscriptions import pause as pause_subscription
from console.events.subscriptions import resume as resume_subscription
from console.eventsourcing import declarations
from console.eventsourcing.models import ProjectionState, RebuildRun
from console.eventsourcing.projections import Projector, get
from console.eventsourcing.replay import REBUILD, swap

Status = RebuildRun.Status


class RebuildError(Exception):
    """A rebuild action that cannot be done now, in words for the person who asked."""


def parse_as_of(value: str) -> datetime:
    """An ISO 8601 time or date (in the site's time zone when it names none); never in the future."""
    text = value.strip()
    try:
        moment = parse_datetime(text)
        if moment is None:
            day = parse_date(text)
            if day is not None:
                moment = datetime(day.year, day.month, day.day)
    except ValueError:
        moment = None
    if moment is None:
        raise RebuildError(f"“{value}” is not a time: use ISO 8601, for example 2026-01-31T17:45 or 2026-01-31.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    try:
        representable_time(moment)
    except ValidationError as exc:
        raise RebuildError(exc.messages[0]) from None
    if moment > timezone.now():
        raise RebuildError("The “as of” time is in the future.")
    return moment


def _projector(name: str) -> Projector:
    try:
        return get(name)
    except LookupError as exc:
        raise RebuildError(str(exc)) from exc


def _bound(as_of_position: int | None, as_of_time: datetime | None) -> tuple[int | None, Cursor | None]:
    """The position an "as of" rebuild stops at, and the commit-order cursor of the end of its transaction.

    A projection as it was at position P holds everything committed up to and including P's transaction,
    so on PostgreSQL the bound is the last event of that transaction in (tx, position) order.
    """
    if as_of_time is not None:
        position = (
            Event.objects.recorded_by(as_of_time).order_by("-position").values_list("position", flat=True)
        ).first()
        if position is None:
            raise RebuildError("No event was recorded at or before that time.")
        as_of_position = position
    if as_of_position is None:
        return None, None
    if as_of_position < 1:
        raise RebuildError("The “as of” position must be a positive event position.")
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    if as_of_position > newest:
        raise RebuildError(f"Position {as_of_position} is beyond the end of the log ({newest}).")
    event = (
        Event.objects.filter(position__lte=as_of_position).order_by("-position").values_list("position", "tx").first()
    )
    if event is None:
        raise RebuildError(f"The log has no event at or before position {as_of_position}.")
    if not uses_xid():
        return as_of_position, (None, as_of_position)
    last = Event.objects.filter(tx=event[1]).order_by("-position").values_list("position", flat=True).first()
    return as_of_position, (event[1], last or event[0])


def _discard_copies(projector: Projector, state: ProjectionState) -> None:
    stale = RebuildRun.objects.of(projector.name).filter(status__in=(Status.READY, *RebuildRun.RESUMABLE))
    for run in stale:
        if run.generation != state.live_generation:
            projector.clear(run.generation)
    stale.update(status=Status.DISCARDED)


def rebuild_start(
    *,
    projection: str,
    actor: Any,
    as_of_position: int | None = None,
    as_of_time: datetime | None = None,
    swap: bool | None = None,
    enqueue: bool = True,
) -> RebuildRun:
    """Queue a rebuild of ``projection`` into a new generation, optionally as of a past position or time.

    A full rebuild swaps in when done. An "as of" rebuild leaves a copy beside the live model unless
    ``swap`` (the confirmed "into the live tables") is given, which only an asynchronous projection allows:
    an inline one is written by every save and cannot stand still at a past point. ``enqueue=False`` is for
    callers that run the rebuild themselves (the management command).
    """
    projector = _projector(projection)
    if as_of_position is not None and as_of_time is not None:
        raise RebuildError("Give either an “as of” position or an “as of” time, not both.")
    as_of = as_of_position is not None or as_of_time is not None
    swap = (not as_of) if swap is None else swap
    if as_of and swap and projector.mode == "inline":
        raise RebuildError(
            f"{projection} is projected inline: an “as of” rebuild of it can only be a copy beside the live one."
        )
    with transaction.atomic():
        ProjectionState.objects.get_or_create(name=projection)
        state = ProjectionState.objects.select_for_update().get(name=projection)
        if RebuildRun.objects.of(projection).unfinished().exists():
            raise RebuildError(f"A rebuild of {projection} is already under way: cancel it or wait for it.")
        position, until = _bound(as_of_position, as_of_time)
        _discard_copies(projector, state)
        generation = state.next_generation
        state.next_generation += 1
        state.save(update_fields=["next_generation"])
        run = RebuildRun.objects.create(
            projection=projection,
            generation=generation,
            as_of_position=position if as_of_time is None else None,
            as_of_time=as_of_time,
            until_tx=until[0] if until else None,
            until_position=until[1] if until else None,
            swap=swap,
            requested_by=actor,
        )
        emit(
            declarations.REBUILD_REQUESTED,
            actor=actor,
            projection=projection,
            run=run.pk,
            as_of=run.as_of_label,
            swap=swap,
        )
        if enqueue:
            enqueue_on_commit(REBUILD, run.pk)
    return run


def rebuild_cancel(*, run_id: int, actor: Any) -> RebuildRun:
    with transaction.atomic():
        run = RebuildRun.objects.select_for_update().get(pk=run_id)
        if run.status == Status.QUEUED:
            run.status = Status.CANCELLED
            run.finished_at = timezone.now()
        elif run.status == Status.RUNNING:
            run.status = Status.CANCELLING
        else:
            raise RebuildError(f"Rebuild #{run.pk} is {run.get_status_display()}: there is nothing to cancel.")
        run.save(update_fields=["status", "finished_at"])
        emit(declarations.REBUILD_CANCELLED, actor=actor, projection=run.projection, run=run.pk)
    return run


def rebuild_resume(*, run_id: int, actor: Any) -> RebuildRun:
    with transaction.atomic():
        run = RebuildRun.objects.select_for_update().get(pk=run_id)
        if run.status not in RebuildRun.RESUMABLE:
            raise RebuildError(f"Rebuild #{run.pk} is {run.get_status_display()}: only a stopped one can resume.")
        if RebuildRun.objects.of(run.projection).unfinished().exists():
            raise RebuildError(f"Another rebuild of {run.projection} is under way.")
        run.status = Status.QUEUED
        run.error = ""
        run.finished_at = None
        run.save(update_fields=["status", "error", "finished_at"])
        emit(declarations.REBUILD_RESUMED, actor=actor, projection=run.projection, run=run.pk)
        enqueue_on_commit(REBUILD, run.pk)
    return run


def rebuild_promote(*, run_id: int, actor: Any) -> RebuildRun:
    """Make a finished copy the live read model (the "into the live tables" of an "as of" rebuild)."""
    with transaction.atomic():
        run = RebuildRun.objects.select_for_update().get(pk=run_id)
        if run.status != Status.READY:
            raise RebuildError(f"Rebuild #{run.pk} is {run.get_status_display()}: only a finished copy can go live.")
        projector = _projector(run.projection)
        if projector.mode == "inline" and run.until_position is not None:
            raise RebuildError(f"{run.projection} is projected inline: its “as of” copy cannot replace the live one.")
        swap(run, projector)
        emit(declarations.REBUILD_PROMOTED, actor=actor, projection=run.projection, run=run.pk)
    return run


def projection_pause(*, name: str, actor: Any) -> None:
    if _projector(name).mode != "async":
        raise RebuildError(f"{name} is projected inline, inside each save: it cannot be paused.")
    with transaction.atomic():
        pause_subscription(name)
        emit(declarations.PAUSED, actor=actor, projection=name)


def projection_resume(*, name: str, actor: Any) -> None:
    if _projector(name).mode != "async":
        raise RebuildError(f"{name} is projected inline, inside each save: it is never paused.")
    with transaction.atomic():
        resume_subscription(name)
        emit(declarations.RESUMED, actor=actor, projection=name)
        notify_appended()
