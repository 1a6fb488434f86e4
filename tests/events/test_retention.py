"""Retention: per-type pruning into checksummed archives, in batches, from the tick; audit types are kept unless
named; the sealed log still verifies over what was pruned."""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.db import connection
from django.utils import timezone

from console.core.tick import run_tick
from console.events import subscriptions
from console.events.models import Archive, Event, Seal
from console.events.pipeline import batch, emit
from console.events.retention import overview, prune, retention_policy
from console.events.seal import SEALER, verify
from tests.events.conftest import PING, seal_all


def _age(events: Sequence[Event | None], days: int) -> None:
    # recorded_at is set by the database; move these rows back in time the way a clock would have.
    positions = [e.position for e in events if e is not None]
    placeholders = ",".join(["%s"] * len(positions))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Event._meta.db_table} SET recorded_at = %s WHERE position IN ({placeholders})",
            [timezone.now() - timedelta(days=days), *positions],
        )


def test_old_events_of_a_type_with_retention_are_pruned_in_batches(db: None, settings: Any, tmp_path: Path) -> None:
    settings.CONSOLE_EVENTS = {
        "RETENTION_DAYS": {"test.ping": 7, "auth.logged_out": 7},
        "RETENTION_BATCH": 2,
        "ARCHIVE_DIR": str(tmp_path),
    }
    with batch():
        old = [emit(PING, n=n) for n in range(5)]
        fresh = emit(PING, n=99)
        audit = emit("auth.login_failed", username="x")
    _age(old, 10)
    _age([audit], 400)
    seal_all()
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


def _old_sealed_pings(count: int, *, days: int = 10) -> list[Event]:
    with batch():
        events = [emit(PING, n=n, note="ünïcode") for n in range(count)]
        emit("auth.login_failed", username="kept")
    stored: list[Event] = [event for event in events if event is not None]
    _age(stored, days)  # before sealing: the seals hold the times the events keep
    seal_all()
    return stored


def test_pruned_events_go_to_checksummed_archives_and_the_log_still_verifies(
    db: None, settings: Any, tmp_path: Path
) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7}, "RETENTION_BATCH": 3, "ARCHIVE_DIR": str(tmp_path)}
    old = _old_sealed_pings(7)
    assert prune() == {"test.ping": 7}
    assert not Event.objects.filter(type="test.ping").exists()
    archives = list(Archive.objects.order_by("first_position"))
    assert [a.count for a in archives] == [3, 3, 1]
    for archive in archives:
        packed = (tmp_path / archive.name).read_bytes()
        assert hashlib.sha256(packed).hexdigest() == archive.sha256
        # Each line is [columns, data, metadata].
        lines = [json.loads(line) for line in gzip.decompress(packed).decode().splitlines()]
        assert [head["position"] for head, _, _ in lines] == list(
            range(archive.first_position, archive.last_position + 1)
        )
        assert lines[0][0]["type"] == "test.ping" and lines[0][1]["note"] == "ünïcode"
    assert Seal.objects.get().archives == [a.name for a in archives]
    result = verify()
    assert result.ok, result.problems
    assert result.archived == len(old) and result.checked == len(old) + 1


def test_an_altered_or_lost_archive_is_named(db: None, settings: Any, tmp_path: Path) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7}, "ARCHIVE_DIR": str(tmp_path)}
    _old_sealed_pings(3)
    prune()
    archive = Archive.objects.get()
    path = tmp_path / archive.name
    lines = gzip.decompress(path.read_bytes()).decode().replace('"n": 1', '"n": 5')
    path.write_bytes(gzip.compress(lines.encode()))
    seal = Seal.objects.get()
    pruned = range(archive.first_position, archive.last_position + 1)
    assert [p.text for p in verify().problems] == [f"archive {archive.name} does not match its checksum"] + [
        f"event #{position} was deleted (seal {seal.pk})" for position in pruned
    ]
    path.unlink()
    assert f"archive {archive.name} is missing" in verify().problems[0].text


def test_unsealed_events_are_not_pruned_until_sealed(db: None, settings: Any, tmp_path: Path) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7}, "ARCHIVE_DIR": str(tmp_path)}
    subscriptions.pause(SEALER)
    _old_sealed_pings(2)
    assert prune() == {}
    subscriptions.resume(SEALER)
    seal_all()
    assert prune() == {"test.ping": 2}


def test_without_an_archive_directory_nothing_is_pruned(db: None, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7}}
    _old_sealed_pings(2)
    assert prune() == {}
    assert Event.objects.filter(type="test.ping").count() == 2


def test_the_overview_lists_each_types_limit_oldest_event_and_archives(db: None, settings: Any, tmp_path: Path) -> None:
    settings.CONSOLE_EVENTS = {"RETENTION_DAYS": {"test.ping": 7}, "ARCHIVE_DIR": str(tmp_path)}
    _old_sealed_pings(2)
    prune()
    lines = {line.name: line for line in overview()}
    assert lines["test.ping"].days == 7 and lines["test.ping"].oldest is None
    assert [a.count for a in lines["test.ping"].archives] == [2]
    assert lines["auth.login_failed"].days is None and lines["auth.login_failed"].audit
    assert lines["auth.login_failed"].oldest is not None
