"""Appending events in bulk: on SQLite, multi-row ``INSERT ... RETURNING`` without the ORM's compilation.

SQLite's ``bulk_create`` spends more time compiling each field of each row than the database spends
inserting it; the log's columns are fixed, so the statement is built once per chunk here. Positions and
``recorded_at`` come back from the database and are set on the instances, as ``bulk_create`` would.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models.expressions import DatabaseDefault
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from console.events.models import Event

COLUMNS = ("stream_type", "stream_id", "version", "type", "schema_version", "data", "metadata", "actor_id")
CHUNK = 500
# An aggregate's save appends a handful of events: below this many, the prebuilt statement wins on PostgreSQL too.
SMALL_ON_POSTGRES = 100


def insert_events(events: list[Event], *, using: str = DEFAULT_DB_ALIAS) -> None:
    """Insert ``events`` (new, with database-default ``recorded_at``) in the current transaction."""
    connection = connections[using]
    large_on_postgres = connection.vendor == "postgresql" and len(events) > SMALL_ON_POSTGRES
    if large_on_postgres or any(not isinstance(event.recorded_at, DatabaseDefault) for event in events):
        # For large batches PostgreSQL's ORM insert (UNNEST of one array per column) beats this; backfills
        # with explicit times are rare. Both go through bulk_create.
        Event.objects.using(using).bulk_create(events, batch_size=1000)
        return
    quote = connection.ops.quote_name
    adapt = connection.ops.adapt_json_value
    columns = ", ".join(quote(column) for column in COLUMNS)
    row = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    table = quote(Event._meta.db_table)
    for start in range(0, len(events), CHUNK):
        chunk = events[start : start + CHUNK]
        params: list[Any] = []
        # The events of one save share their metadata dict: encode it once.
        encoded: dict[int, Any] = {}
        for event in chunk:
            metadata = encoded.get(id(event.metadata))
            if metadata is None:
                metadata = encoded[id(event.metadata)] = adapt(event.metadata, None)
            params += (
                event.stream_type,
                event.stream_id,
                event.version,
                event.type,
                event.schema_version,
                adapt(event.data, None),
                metadata,
                event.actor_id,
            )
        values = ", ".join([row] * len(chunk))
        sql = f"INSERT INTO {table} ({columns}) VALUES {values} RETURNING position, recorded_at, tx"
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            returned = cursor.fetchall()
        for event, (position, recorded_at, tx) in zip(chunk, returned, strict=True):
            if isinstance(recorded_at, str):
                recorded_at = parse_datetime(recorded_at)
            if timezone.is_naive(recorded_at):
                # SQLite keeps UTC without an offset, as the ORM's own converter assumes.
                recorded_at = timezone.make_aware(recorded_at, UTC)
            event.position, event.recorded_at, event.tx = position, recorded_at, tx
            event._state.adding = False
            event._state.db = using
