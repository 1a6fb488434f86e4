"""Rebuilding projections from the log: into a fresh generation beside the live one, then swapped in.

The live read model keeps serving (and, for inline projections, keeps being written) while a rebuild
replays the log in batches, one bulk upsert per batch, into the next generation. At the end the rebuild
catches up with what was appended meanwhile and swaps generations in one transaction that holds off the
projection's own writers. An "as of" rebuild stops at a past point and leaves its copy beside the live model
to be compared, or promoted after confirmation.
"""

from __future__ import annotations

import traceback
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from console.core.inputs import representable_time
from console.events.context import capture
from console.events.models import Checkpoint, Event
from console.events.pipeline import emit
from console.events.reader import Cursor, cursor_of, read_records, uses_xid
from console.events.records import Record, StoredEvent
from console.events.subscriptions import pause as pause_subscription
from console.events.subscriptions import resume as resume_subscription
from console.eventsourcing import events as audit
from console.eventsourcing.conf import es_settings
from console.eventsourcing.models import ProjectionState, RebuildRun
from console.eventsourcing.projections import Projector, get, unknown_types

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


def _key(cursor: Cursor) -> tuple[int, int]:
    return (-1 if cursor[0] is None else cursor[0], cursor[1])


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


def _enqueue(run_id: int) -> None:
    from console.eventsourcing.tasks import rebuild_projection

    context = capture()
    transaction.on_commit(lambda: rebuild_projection.enqueue(run_id, context))


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
            audit.REBUILD_REQUESTED,
            actor=actor,
            projection=projection,
            run=run.pk,
            as_of=run.as_of_label,
            swap=swap,
        )
        if enqueue:
            _enqueue(run.pk)
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
        emit(audit.REBUILD_CANCELLED, actor=actor, projection=run.projection, run=run.pk)
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
        emit(audit.REBUILD_RESUMED, actor=actor, projection=run.projection, run=run.pk)
        _enqueue(run.pk)
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
        _swap(run, projector)
        emit(audit.REBUILD_PROMOTED, actor=actor, projection=run.projection, run=run.pk)
    return run


def projection_pause(*, name: str, actor: Any) -> None:
    if _projector(name).mode != "async":
        raise RebuildError(f"{name} is projected inline, inside each save: it cannot be paused.")
    with transaction.atomic():
        pause_subscription(name)
        emit(audit.PAUSED, actor=actor, projection=name)


def projection_resume(*, name: str, actor: Any) -> None:
    if _projector(name).mode != "async":
        raise RebuildError(f"{name} is projected inline, inside each save: it is never paused.")
    with transaction.atomic():
        resume_subscription(name)
        emit(audit.RESUMED, actor=actor, projection=name)
        from console.events.subscriptions import notify_appended

        notify_appended()


# --- the task body -------------------------------------------------------------------------------------


def _within(run: RebuildRun, event: StoredEvent) -> bool:
    if run.until_position is None:
        return True
    return _key(cursor_of(event)) <= _key((run.until_tx, run.until_position))


def _estimate(run: RebuildRun, projector: Projector) -> int:
    queryset = Event.objects.filter(position__gt=run.position)
    if projector.stream_types:
        queryset = queryset.filter(stream_type__in=projector.stream_types)
    else:
        queryset = queryset.filter(type__in=projector.types)
    if run.until_position is not None:
        queryset = queryset.filter(position__lte=run.until_position)
    return run.processed + run.skipped + queryset.count()


def _measure_log() -> None:
    """Have PostgreSQL measure the log when it has more than doubled since it last did.

    Each batch reads the next events in (tx, position) order; planned without statistics (a log loaded
    in bulk that autovacuum has not analyzed yet) that is a sort of the rest of the table per batch instead
    of an index range, several times slower over a whole rebuild.
    """
    if connection.vendor != "postgresql":
        return
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT GREATEST(c.reltuples, 0), COALESCE(s.n_mod_since_analyze, 0) FROM pg_class AS c"
            " LEFT JOIN pg_stat_user_tables AS s ON s.relid = c.oid WHERE c.oid = %s::regclass",
            [table],
        )
        row = cursor.fetchone()
        if row is not None and row[1] > max(row[0], 1000):
            # The columns the reader filters and orders by: sizing up the JSON columns would double the cost.
            columns = ", ".join(connection.ops.quote_name(name) for name in ("tx", "position", "type", "stream_type"))
            cursor.execute(f"ANALYZE {connection.ops.quote_name(table)} ({columns})")


def _reader_types(projector: Projector) -> frozenset[str] | None:
    return None if projector.stream_types else projector.types


def _replay(run: RebuildRun, projector: Projector, events: list[Record]) -> int:
    """Project ``events`` into the run's generation; returns how many were skipped as unknown types."""
    wanted = projector.accepted(events)
    unknown = {event.position for event in unknown_types(wanted)}
    if unknown:
        wanted = [event for event in wanted if event.position not in unknown]
    projector.project(wanted, generation=run.generation)
    run.processed += len(wanted)
    run.skipped += len(unknown)
    return len(unknown)


def run_rebuild(run_id: int) -> str:
    """Replay the log into the run's generation batch by batch; resumable from the stored cursor."""
    with transaction.atomic():
        run = RebuildRun.objects.select_for_update().get(pk=run_id)
        if run.status == Status.CANCELLING:
            run.status = Status.CANCELLED
            run.finished_at = timezone.now()
            run.save()
        if run.status not in (Status.QUEUED, Status.RUNNING):
            return run.status
        projector = type(_projector(run.projection))(replaying=True)
        if run.status == Status.QUEUED and run.processed == 0 and run.position == 0:
            projector.clear(run.generation)
        run.status = Status.RUNNING
        run.started_at = run.started_at or timezone.now()
        run.heartbeat_at = timezone.now()
        run.total = _estimate(run, projector)
        run.save()
    _measure_log()
    batch_size = es_settings().rebuild_batch
    types = _reader_types(projector)
    try:
        while True:
            with transaction.atomic():
                run = RebuildRun.objects.select_for_update().get(pk=run_id)
                if run.status == Status.CANCELLING:
                    run.status = Status.CANCELLED
                    run.finished_at = timezone.now()
                    run.save()
                    return run.status
                if run.status != Status.RUNNING:
                    return run.status
                events = read_records(run.cursor, limit=batch_size, types=types)
                within = [event for event in events if _within(run, event)]
                if within:
                    _replay(run, projector, within)
                    run.tx, run.position = cursor_of(within[-1])
                run.heartbeat_at = timezone.now()
                run.total = max(run.total, run.processed + run.skipped)
                done = len(within) < len(events) or len(events) < batch_size
                if done:
                    _finish(run, projector)
                run.save()
                if done:
                    emit(
                        audit.REBUILD_FINISHED,
                        projection=run.projection,
                        run=run.pk,
                        status=run.status,
                        events=run.processed,
                        skipped_unknown=run.skipped,
                    )
                    return run.status
    except Exception as exc:
        error = "".join(traceback.format_exception_only(exc)).strip()[:4000]
        with transaction.atomic():
            run = RebuildRun.objects.select_for_update().get(pk=run_id)
            run.status = Status.FAILED
            run.error = error
            run.finished_at = timezone.now()
            run.save()
            emit(audit.REBUILD_FAILED, projection=run.projection, run=run.pk, error=error)
        raise


def _finish(run: RebuildRun, projector: Projector) -> None:
    run.finished_at = timezone.now()
    if run.swap:
        _swap(run, projector)
    else:
        run.status = Status.READY


def _swap(run: RebuildRun, projector: Projector) -> None:
    """Catch the run's generation up with the log and make it live, holding off the projection's writers."""
    state = ProjectionState.objects.select_for_update().get(name=run.projection)
    types = _reader_types(projector)
    batch_size = es_settings().rebuild_batch
    replayer = type(projector)(replaying=True)
    if projector.mode == "inline":
        if run.until_position is None:
            # Writers that have not committed yet wait on the lock held here and will write into the new
            # generation: everything committed is read, without waiting on the reader's horizon.
            while events := read_records(run.cursor, limit=batch_size, types=types, horizon=False):
                _replay(run, replayer, events)
                run.tx, run.position = cursor_of(events[-1])
    else:
        Checkpoint.objects.get_or_create(name=run.projection)
        checkpoint = Checkpoint.objects.select_for_update().get(name=run.projection)
        if run.until_position is None:
            while events := read_records(run.cursor, limit=batch_size, types=types):
                _replay(run, replayer, events)
                run.tx, run.position = cursor_of(events[-1])
            if _key(run.cursor) > _key(checkpoint.cursor):
                checkpoint.tx, checkpoint.position = run.cursor
        else:
            # Live as it was then: the subscription stands still there until someone resumes it.
            checkpoint.tx, checkpoint.position = run.until_tx, run.until_position
            checkpoint.status = Checkpoint.Status.PAUSED
        checkpoint.retry_at = None
        checkpoint.failures = 0
        checkpoint.save()
    old = state.live_generation
    state.live_generation = run.generation
    state.swapped_at = timezone.now()
    state.save(update_fields=["live_generation", "swapped_at"])
    projector.clear(old)
    run.status = Status.LIVE
    run.finished_at = run.finished_at or timezone.now()
    run.save()


def redispatch_stale() -> int:
    """Tick duty: hand rebuilds whose task vanished (worker lost, queue flushed) to a new task."""
    stale = timezone.now() - timedelta(seconds=es_settings().rebuild_stale_seconds)
    runs = list(
        RebuildRun.objects.filter(status__in=(Status.QUEUED, Status.RUNNING, Status.CANCELLING))
        .filter(created_at__lt=stale)
        .exclude(heartbeat_at__gte=stale)
        .values_list("pk", flat=True)
    )
    from console.eventsourcing.tasks import rebuild_projection

    for run_id in runs:
        rebuild_projection.enqueue(run_id, {})
    return len(runs)
