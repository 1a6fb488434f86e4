from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection
from django.db.models import QuerySet

from console.events.models import Event


def test_recorded_by_includes_an_event_recorded_on_an_exact_second(db: None) -> None:
    event = Event.objects.create(type="test.exact_second")
    with connection.cursor() as cursor:
        # What SQLite's clock writes: milliseconds, here all zero.
        cursor.execute(
            "UPDATE events_event SET recorded_at = %s WHERE position = %s",
            ["2026-01-01 10:00:00.000" if connection.vendor == "sqlite" else "2026-01-01 10:00:00+00", event.position],
        )
    second = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert list(Event.objects.recorded_by(second).values_list("position", flat=True)) == [event.position]
    assert not Event.objects.recorded_by(datetime(2026, 1, 1, 9, 59, 59, 999999, tzinfo=UTC)).exists()
    # The comparison the fix replaces misses it on SQLite.
    if connection.vendor == "sqlite":
        assert not Event.objects.filter(recorded_at__lte=second).exists()


def _plan(queryset: QuerySet[Event]) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a small table: ask whether the index can serve
            cursor.execute(f"EXPLAIN {sql}", params)
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
        return "\n".join(str(row[-1] if connection.vendor == "sqlite" else row[0]) for row in cursor.fetchall())


def test_request_and_cause_lookups_use_their_partial_indexes(db: None) -> None:
    first = Event.objects.create(type="test.cause", metadata={"request_id": "req-1"})
    effect = Event.objects.create(type="test.effect", metadata={"causation_id": str(first.position)})
    Event.objects.create(type="test.other")
    assert list(Event.objects.with_request("req-1")) == [first]
    assert list(Event.objects.caused_by(first.position)) == [effect]
    assert "event_request_id" in _plan(Event.objects.with_request("req-1"))
    assert "event_causation_id" in _plan(Event.objects.caused_by(first.position))
    assert "event_actor_pos" in _plan(Event.objects.filter(actor_id=1))
