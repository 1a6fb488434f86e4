"""Retention: per-type pruning in batches from the tick; audit types are kept unless named."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from console.core.tick import run_tick
from console.events.models import Event
from console.events.pipeline import batch, emit
from console.events.retention import prune, retention_policy
from tests.events.conftest import PING


def _age(events: list[Event | None], days: int) -> None:
    # recorded_at is set by the database; move these rows back in time the way a clock would have.
    positions = [e.position for e in events if e is not None]
    placeholders = ",".join(["%s"] * len(positions))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET recorded_at = %s WHERE position IN ({placeholders})",
            [timezone.now() - timedelta(days=days), *positions],
        )


def test_old_events_of_a_type_with_retention_are_pruned_in_batches(db: None, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7, "auth.logged_out": 7}, "RETENTION_BATCH": 2}
    with batch():
        old = [emit(PING, n=n) for n in range(5)]
        fresh = emit(PING, n=99)
        audit = emit("auth.login_failed", username="x")
    _age(old, 10)
    _age([audit], 400)
    assert prune(max_batches=2) == {"test.ping": 4}
    assert prune() == {"test.ping": 1}
    assert list(Event.objects.filter(type="test.ping").values_list("data__n", flat=True)) == [99]
    assert fresh is not None and audit is not None
    assert Event.objects.filter(position=audit.position).exists()


def test_audit_types_are_never_pruned_by_default(db: None, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {}
    assert "auth.login_failed" not in retention_policy()
    audit = emit("auth.login_failed", username="x")
    _age([audit], 10_000)
    assert run_tick()["events.retention"] == {}
    assert Event.objects.filter(type="auth.login_failed").count() == 1
