"""The gapless reader: the event log in commit order.

A position is assigned at insert but becomes visible at commit, so tailing ``position > last`` misses rows
of transactions that commit out of order. On PostgreSQL each row stores its writing transaction id; the
reader only returns rows of transactions older than the oldest one still running (all of which have
committed or aborted) in ``(tx, position)`` order, so nothing can appear behind a cursor later. The
``table_lock`` setting instead serializes writers (``LOCK TABLE ... IN EXCLUSIVE MODE`` in the append
path), after which position order is commit order. SQLite serializes writers by itself.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from json import JSONDecoder
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet

from console.events.conf import events_settings
from console.events.models import Event
from console.events.records import RECORD_COLUMNS, Record, StoredEvent

Cursor = tuple[int | None, int]
_decode = JSONDecoder().raw_decode
START: Cursor = (None, 0)


def uses_xid() -> bool:
    return connection.vendor == "postgresql" and events_settings().reader == "xid"


def uses_table_lock() -> bool:
    return connection.vendor == "postgresql" and events_settings().reader == "table_lock"


def lock_for_append() -> None:
    """Serialize writers under the ``table_lock`` strategy; call in the transaction that appends events."""
    if uses_table_lock():
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Event._meta.db_table} IN EXCLUSIVE MODE")


# The oldest transaction that may still commit rows into this database's log. Candidates are the running
# xids of the statement's snapshot (cluster-wide, never our own) plus, when our transaction has an xid, every
# xid between the snapshot's xmax and ours (assigned, not completed, so possibly running). Candidates proven
# to belong to a backend of another database are dropped: they cannot write our table and must not stall
# readers; an xid whose owner cannot be identified counts, which can only make a reader wait, never skip.
# Without candidates everything older than the snapshot's xmax has completed, and so has everything older
# than our own xid, so our own rows (visible only to us) are readable in their place in the order.
HORIZON_SQL = """(
    WITH snap AS (
        SELECT pg_current_snapshot() AS s, pg_current_xact_id_if_assigned()::text::bigint AS own
    ),
    candidates AS (
        SELECT running.xid::text::bigint AS xid FROM snap, pg_snapshot_xip(snap.s) AS running(xid)
        UNION ALL
        SELECT generate_series(pg_snapshot_xmax(snap.s)::text::bigint, snap.own - 1) FROM snap
        WHERE snap.own IS NOT NULL
    )
    SELECT COALESCE(
        (
            SELECT MIN(candidates.xid) FROM candidates
            WHERE NOT EXISTS (
                SELECT 1 FROM pg_locks AS lock JOIN pg_stat_activity AS backend ON backend.pid = lock.pid
                WHERE lock.locktype = 'transactionid' AND lock.mode = 'ExclusiveLock' AND lock.granted
                  AND lock.transactionid::text::bigint = mod(candidates.xid, 4294967296)
                  AND backend.datname IS DISTINCT FROM current_database()
            )
        ),
        (SELECT GREATEST(pg_snapshot_xmax(snap.s)::text::bigint, snap.own + 1) FROM snap)
    )
)"""


def _fresh_activity() -> None:
    # pg_stat_activity is cached for the rest of a transaction; a stale copy could misattribute a reused pid.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")


def _in_commit_order(after: Cursor, types: Collection[str] | None, *, horizon: bool = True) -> QuerySet[Event] | None:
    """The events after ``after`` a reader may see now, in commit order; None when ``types`` is empty.

    ``horizon=False`` drops the wait for older running transactions: only for a caller that holds off every
    writer that could still commit behind the cursor (a rebuild's swap holds the projection's lock).
    """
    queryset: QuerySet[Event] = Event.objects.all()
    if types is not None:
        if not types:
            return None
        queryset = queryset.filter(type__in=list(types))
    if uses_xid():
        tx = -1 if after[0] is None else after[0]
        # Row comparison and snapshot horizon have no ORM spelling; "tx IS NOT NULL" lets PostgreSQL use the
        # partial index on (tx, position) instead of sorting the rest of the log for every batch.
        where = ["tx IS NOT NULL", "(tx, position) > (%s, %s)"]
        if horizon:
            _fresh_activity()
            where.append(f"tx < {HORIZON_SQL}")
        return queryset.extra(where=where, params=[tx, after[1]]).order_by("tx", "position")
    return queryset.filter(position__gt=after[1]).order_by("position")


def read_batch(
    after: Cursor, *, limit: int, types: Collection[str] | None = None, only: Sequence[str] | None = None
) -> list[Event]:
    """Up to ``limit`` events after ``after`` in commit order, optionally only of ``types``.

    ``only`` loads just those columns (the others are deferred): for readers that fetch what they need
    themselves and would otherwise pay for decoding every event's JSON.
    """
    queryset = _in_commit_order(after, types)
    if queryset is None:
        return []
    if only is not None:
        queryset = queryset.only(*only)
    return list(queryset[:limit])


def read_values(
    after: Cursor, *, limit: int, fields: Sequence[str], computed: dict[str, str] | None = None
) -> list[tuple[Any, ...]]:
    """``read_batch`` as tuples of ``fields``; ``computed`` names SQL expressions the database computes per row
    in the same statement (a subscriber that needs a function of each event rather than the event)."""
    queryset = _in_commit_order(after, None)
    if queryset is None:
        return []
    if computed:
        queryset = queryset.extra(select=computed)
    return list(queryset.values_list(*fields)[:limit])


def _native_loading() -> bool:
    """PostgreSQL through psycopg 3 with time zones on: the case where the rows can skip Django's converters."""
    if connection.vendor != "postgresql" or not settings.USE_TZ:
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3

    return is_psycopg3


def read_records(
    after: Cursor, *, limit: int, types: Collection[str] | None = None, horizon: bool = True
) -> list[Record]:
    """``read_batch`` as records: for replays, which read many events and need no model instances."""
    queryset = _in_commit_order(after, types, horizon=horizon)
    if queryset is None:
        return []
    rows = queryset.values_list(*RECORD_COLUMNS)[:limit]
    if not _native_loading():
        return list(map(Record._make, rows))
    # Django's converters cost more per row than the database does: psycopg's own (C) loader reads the time
    # in the session's zone (UTC, as Django sets it) and the payload (text here) is decoded once below,
    # by the decoder itself: PostgreSQL writes jsonb as one value without surrounding whitespace, which is
    # all that json.loads would check on top (a third of the decoding time).
    from psycopg.types.datetime import TimestamptzLoader

    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    make = tuple.__new__  # Record(...) is a Python-level __new__: twice the cost for ten fields
    return [
        make(
            Record, (position, tx, stream_type, stream_id, version, type_, schema_version, _decode(data)[0], actor, at)
        )
        for position, tx, stream_type, stream_id, version, type_, schema_version, data, actor, at in fetched
    ]


def cursor_of(event: StoredEvent) -> Cursor:
    return (event.tx if uses_xid() else None, event.position)


def head() -> Cursor:
    """The cursor of the newest event a reader can see now; ``START`` for an empty log."""
    if uses_xid():
        _fresh_activity()
        newest = (
            Event.objects.extra(where=[f"tx < {HORIZON_SQL}"])  # see read_batch
            .order_by("-tx", "-position")
            .values_list("tx", "position")
            .first()
        )
    else:
        newest = Event.objects.order_by("-position").values_list("tx", "position").first()
    if newest is None:
        return START
    return (newest[0] if uses_xid() else None, newest[1])


def oldest_open_transaction() -> tuple[int, float] | None:
    """PostgreSQL: the oldest running transaction that holds readers back (its xid and age in seconds).

    That is the reader's horizon when a transaction of this database (other than the caller's) is running;
    ``None`` when nothing holds readers back, and on other databases.
    """
    if connection.vendor != "postgresql":
        return None
    _fresh_activity()
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH horizon AS (SELECT {HORIZON_SQL} AS xid)
            SELECT horizon.xid, EXTRACT(EPOCH FROM clock_timestamp() - backend.xact_start)::float8
            FROM horizon
            JOIN pg_locks AS lock
              ON lock.locktype = 'transactionid' AND lock.mode = 'ExclusiveLock' AND lock.granted
             AND lock.transactionid::text::bigint = mod(horizon.xid, 4294967296)
            LEFT JOIN pg_stat_activity AS backend ON backend.pid = lock.pid
            LIMIT 1
            """
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return int(row[0]), float(row[1] or 0.0)
