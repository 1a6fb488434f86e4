from __future__ import annotations

from datetime import UTC, datetime

from django.db import connection

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
