"""Appending events in bulk with one prebuilt statement, without the ORM's compilation of every value.

``bulk_create`` spends more time compiling each field of each row than the database spends inserting it;
the log's columns are fixed, so the statement is built once per shape here. On PostgreSQL it takes one array
per column (``UNNEST``): the statement is the same whatever the number of rows, so psycopg prepares its
template once instead of parsing a long ``VALUES`` list on every save. SQLite gets a multi-row ``VALUES``
(its driver caches the statement). Positions, ``recorded_at`` and ``tx`` come back from the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.events.models import Event

COLUMNS = ("stream_type", "stream_id", "version", "type", "schema_version", "data", "metadata", "actor_id")
CHUNK = 500
# psycopg keeps the parsed template of statements with at most 50 parameters; up to this many rows a
# ``VALUES`` list stays within that and costs the database less than unpacking arrays.
_VALUES_ROWS_ON_POSTGRES = 6

# One new row of the log, in COLUMNS order, ``data`` and ``metadata`` as Python values.
Row = tuple[str, str, int | None, str, int, Any, Any, int | None]
# What the database assigned to it: position, recorded_at, tx.
Assigned = tuple[int, datetime, int | None]


@cache
def _statement(alias: str, rows: int) -> tuple[str, bool]:
    """The INSERT of ``rows`` rows on database ``alias``, and whether it takes one array per column."""
    connection = connections[alias]
    quote = connection.ops.quote_name
    head = f"INSERT INTO {quote(Event._meta.db_table)} ({', '.join(quote(column) for column in COLUMNS)})"
    tail = "RETURNING position, recorded_at, tx"
    if connection.vendor == "postgresql" and rows > _VALUES_ROWS_ON_POSTGRES:
        # Array element types without lengths (the table checks those), as Django's own UNNEST insert.
        types = [str(Event._meta.get_field(column).db_type(connection)).split("(")[0] for column in COLUMNS]
        return f"{head} SELECT * FROM UNNEST({', '.join(f'%s::{name}[]' for name in types)}) {tail}", True
    row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    return f"{head} VALUES {', '.join([row] * rows)} {tail}", False


def insert_rows(rows: Sequence[Row], *, using: str = DEFAULT_DB_ALIAS) -> list[Assigned]:
    """Insert ``rows`` in the current transaction; returns what the database assigned to each, in order.

    Rows that share one metadata object (the events of one save, of one batch) have it encoded once.
    """
    connection = connections[using]
    adapt = connection.ops.adapt_json_value
    assigned: list[Assigned] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        encoded: dict[int, Any] = {}
        prepared = []
        for stream_type, stream_id, version, type_, schema_version, data, metadata, actor_id in chunk:
            adapted = encoded.get(id(metadata))
            if adapted is None:
                adapted = encoded[id(metadata)] = adapt(metadata, None)
            prepared.append(
                (stream_type, stream_id, version, type_, schema_version, adapt(data, None), adapted, actor_id)
            )
        sql, as_arrays = _statement(using, len(chunk))
        if as_arrays:
            params: list[Any] = [list(column) for column in zip(*prepared, strict=True)]
        else:
            params = [value for row in prepared for value in row]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
        for position, recorded_at, tx in returned:
            if isinstance(recorded_at, str):
                recorded_at = parse_datetime(recorded_at)
            if timezone.is_naive(recorded_at):
                # SQLite keeps UTC without an offset, as the ORM's own converter assumes.
                recorded_at = timezone.make_aware(recorded_at, UTC)
            assigned.append((position, recorded_at, tx))
    return assigned


def insert_events(events: list[Event], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert ``events`` (new, with database-default ``recorded_at``) in the current transaction."""
    if any(not isinstance(event.recorded_at, DatabaseDefault) for event in events):
        # Backfills with explicit times are rare: they go through the ORM.
        Event.objects.using(using).bulk_create(events, batch_size=1000)
        return
    rows: list[Row] = [
        (e.stream_type, e.stream_id, e.version, e.type, e.schema_version, e.data, e.metadata, e.actor_id)
        for e in events
    ]
    for event, (position, recorded_at, tx) in zip(events, insert_rows(rows, using=using), strict=True):
        event.position, event.recorded_at, event.tx = position, recorded_at, tx
        event._state.adding = False
        event._state.db = using
