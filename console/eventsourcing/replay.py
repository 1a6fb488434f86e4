"""Replaying the log into a projection's next generation: the body of the rebuild task.

The live read model keeps serving (and, for inline projections, keeps being written) while a rebuild
replays the log in batches, one bulk upsert per batch, into the next generation. At the end the rebuild
catches up with what was appended meanwhile and swaps generations in one transaction that holds off the
projection's own writers. An "as of" rebuild stops at a past point and leaves its copy beside the live model
to be compared, or promoted after confirmation.
"""

from __future__ import annotations

import traceback
from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from console.events.context import enqueue
from console.events.models import Checkpoint, Event
from console.events.pipeline import emit
from console.events.reader import Cursor, cursor_of, read_records
from console.events.records import Record, StoredEvent
from console.eventsourcing import declarations
from console.eventsourcing.conf import es_settings
from console.eventsourcing.models import ProjectionState, RebuildRun
from console.eventsourcing.projections import Projector, get, unknown_types

Status = RebuildRun.Status
# The task that runs run_rebuild(), named rather than imported: the tasks module imports this one.
REBUILD = "console.eventsourcing.tasks.rebuild_projection"


def _key(cursor: Cursor) -> tuple[int, int]:
    return (-1 if cursor[0] is None else cursor[0], cursor[1])


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
        projector = type(get(run.projection))(replaying=True)
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
                        declarations.REBUILD_FINISHED,
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
            emit(declarations.REBUILD_FAILED, projection=run.projection, run=run.pk, error=error)
        raise


def _finish(run: RebuildRun, projector: Projector) -> None:
    run.finished_at = timezone.now()
    if run.swap:
        swap(run, projector)
    else:
        run.status = Status.READY


def swap(run: RebuildRun, projector: Projector) -> None:
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
    for run_id in runs:
        enqueue(REBUILD, run_id, context={})
    return len(runs)
