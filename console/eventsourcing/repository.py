"""Load aggregates from the log and save their new events to it, with optimistic concurrency and snapshots."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction

from console.events.append import CHUNK, Row, insert_rows
from console.events.context import capture
from console.events.models import Event
from console.events.pipeline import METADATA_KEYS
from console.events.reader import lock_for_append, uses_table_lock
from console.events.records import Record
from console.events.subscriptions import notify_appended
from console.eventsourcing.conf import es_settings
from console.eventsourcing.domain import (
    Aggregate,
    ConcurrencyError,
    StreamNotFound,
    UpcastError,
    aggregate_class,
    event_class,
    upcast,
)
from console.eventsourcing.models import Snapshot
from console.eventsourcing.projections import apply_inline, inline_wanted

A = TypeVar("A", bound=Aggregate)

# Both spellings of the unique (stream_id, version) violation: PostgreSQL names the constraint, SQLite the columns.
_CONFLICT_MARKERS = ("event_stream_version_unique", "events_event.stream_id, events_event.version")


def snapshot_every(cls: type[Aggregate]) -> int:
    return int(es_settings().snapshot_every.get(cls.stream_type, cls.snapshot_every))


def _metadata(causation_id: str | None) -> dict[str, Any]:
    context = capture()
    metadata = {key: context[key] for key in METADATA_KEYS if context.get(key) is not None}
    if causation_id:
        metadata["causation_id"] = causation_id
    return metadata


def save(*aggregates: Aggregate, actor: Any = None, causation_id: str | None = None) -> list[Record]:
    """Append every pending event of ``aggregates`` in one transaction; returns the stored events.

    Versions continue each stream; if another writer appended to one of the streams since it was loaded,
    the unique (stream_id, version) constraint fails, nothing is written, and ``ConcurrencyError`` says so.
    Inline projections and snapshots are written in the same transaction.
    """
    actor_id = actor if isinstance(actor, int) or actor is None else actor.pk
    metadata = _metadata(causation_id)
    if actor_id is not None:
        metadata["actor_id"] = actor_id
    rows: list[Row] = []
    for aggregate in aggregates:
        pending = aggregate.pending()
        start = aggregate.version - len(pending)
        rows.extend(
            (
                aggregate.stream_type,
                aggregate.id,
                start + offset,
                event.event_name,
                event.schema_version,
                event.payload(),
                metadata,
                actor_id,
            )
            for offset, event in enumerate(pending, start=1)
        )
    if not rows:
        return []
    # A save with nothing to write beside its events (no inline projection, no snapshot due, no table lock,
    # no caller's transaction) and few enough events for one statement is one INSERT, a transaction of its
    # own: one round trip instead of BEGIN, INSERT and COMMIT.
    snapshots = [aggregate for aggregate in aggregates if _snapshot_due(aggregate)]
    alone = (
        len(rows) <= CHUNK
        and not connection.in_atomic_block
        and not uses_table_lock()
        and not snapshots
        and not inline_wanted({(row[3], row[0]) for row in rows})
    )
    try:
        if alone:
            stored = _insert(rows)
        else:
            with transaction.atomic():
                lock_for_append()
                stored = _insert(rows)
                apply_inline(stored)
                _take_snapshots(snapshots)
        notify_appended()
    except IntegrityError as exc:
        if any(marker in str(exc) for marker in _CONFLICT_MARKERS):
            streams = ", ".join(sorted({a.id for a in aggregates}))
            raise ConcurrencyError(f"stream {streams} was changed by someone else; reload and try again") from exc
        raise
    for aggregate in aggregates:
        aggregate.mark_saved()
    return stored


def _insert(rows: list[Row]) -> list[Record]:
    assigned = insert_rows(rows)
    return [
        Record(position, tx, stream_type, stream_id, version, type_, schema_version, data, actor_id, recorded_at)
        for (stream_type, stream_id, version, type_, schema_version, data, _, actor_id), (
            position,
            recorded_at,
            tx,
        ) in zip(rows, assigned, strict=True)
    ]


def _snapshot_due(aggregate: Aggregate) -> bool:
    every = snapshot_every(type(aggregate))
    before = aggregate.version - len(aggregate.pending())
    return bool(every) and aggregate.version // every > before // every


def _take_snapshots(aggregates: Sequence[Aggregate]) -> None:
    """Snapshot ``aggregates`` (those whose save crosses a snapshot boundary)."""
    for aggregate in aggregates:
        Snapshot.objects.update_or_create(
            stream_id=aggregate.id,
            defaults={
                "stream_type": aggregate.stream_type,
                "version": aggregate.version,
                "schema_version": type(aggregate).schema_version,
                "state": aggregate.state(),
            },
        )


def load[A: Aggregate](
    stream_id: str,
    *,
    at_version: int | None = None,
    as_of: datetime | None = None,
    cls: type[A] | None = None,
) -> A:
    """The aggregate of ``stream_id`` now, at ``at_version``, or as it was at time ``as_of``.

    Starts from the snapshot when one fits (same schema version, not past the requested version, and no
    ``as_of``: a snapshot does not know when its events were recorded).
    """
    snapshot = None
    if as_of is None:
        snapshot = Snapshot.objects.filter(stream_id=stream_id).first()
    aggregate: Aggregate | None = None
    if snapshot is not None:
        snap_cls = cls or aggregate_class(snapshot.stream_type)
        fits = snapshot.schema_version == snap_cls.schema_version and (
            at_version is None or snapshot.version <= at_version
        )
        if fits:
            aggregate = snap_cls.from_state(snapshot.state)
    events = Event.objects.filter(stream_id=stream_id, version__isnull=False)
    if aggregate is not None:
        events = events.filter(version__gt=aggregate.version)
    if at_version is not None:
        events = events.filter(version__lte=at_version)
    if as_of is not None:
        events = events.recorded_by(as_of)
    rows = events.order_by("version").values_list("stream_type", "type", "schema_version", "data")
    for stream_type, name, schema_version, data in rows:
        if aggregate is None:
            aggregate = (cls or aggregate_class(stream_type)).blank(stream_id)
        event_cls = event_class(name)
        if schema_version != event_cls.schema_version:
            data = upcast(name, schema_version, data)
        try:
            event = event_cls(**data)
        except TypeError as exc:
            raise UpcastError(f"{name} v{schema_version} in {stream_id}: {exc}") from exc
        aggregate.apply(event)
    if aggregate is None:
        raise StreamNotFound(f"no stream {stream_id!r}")
    return aggregate  # type: ignore[return-value]  # the stream's class is cls whenever cls is given
