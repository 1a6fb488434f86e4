"""The gapless reader returns the log in commit order, and nothing appears behind its cursor later."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest
from django.db import connection, connections, transaction

from console.events import reader
from console.events.models import Event
from console.events.pipeline import batch, emit
from console.events.reader import START, cursor_of, head, oldest_open_transaction, read_batch, read_records
from console.events.records import Record
from tests.conftest import wait_for
from tests.events.conftest import PING, postgres_only


def _pings(count: int, start: int = 0) -> list[Event]:
    with batch():
        stored = [emit(PING, n=n) for n in range(start, start + count)]
    return [event for event in stored if event is not None]


def test_it_reads_events_after_the_cursor_in_order_up_to_the_limit(db: None) -> None:
    events = _pings(5)
    first = read_batch(START, limit=3)
    assert [e.data["n"] for e in first] == [0, 1, 2]
    rest = read_batch(cursor_of(first[-1]), limit=10)
    assert [e.data["n"] for e in rest] == [3, 4]
    assert read_batch(cursor_of(events[-1]), limit=10) == []


@pytest.mark.parametrize("native", [True, False], ids=["loaded by the driver", "through Django's converters"])
def test_records_are_the_same_rows_as_events_without_model_instances(
    db: None, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not native:
        monkeypatch.setattr(reader, "_native_loading", lambda: False)
    _pings(3)
    emit("auth.logged_out", username="someone")
    events = read_batch(START, limit=10)
    records = read_records(START, limit=10)
    assert all(type(record) is Record for record in records)
    assert [
        (r.position, r.tx, r.stream_id, r.version, r.type, r.schema_version, r.data, r.actor_id, r.recorded_at)
        for r in records
    ] == [
        (e.position, e.tx, e.stream_id, e.version, e.type, e.schema_version, e.data, e.actor_id, e.recorded_at)
        for e in events
    ]
    assert records[0].recorded_at.utcoffset() is not None
    assert cursor_of(records[-1]) == cursor_of(events[-1])
    assert [r.data["n"] for r in read_records(cursor_of(records[0]), limit=1, types={PING.name})] == [1]
    assert read_records(START, limit=10, types=set()) == []


def test_it_filters_by_type(db: None) -> None:
    _pings(2)
    emit("auth.logged_out", username="someone")
    assert {e.type for e in read_batch(START, limit=10, types={"auth.logged_out"})} == {"auth.logged_out"}
    assert read_batch(START, limit=10, types=set()) == []


def test_head_is_the_cursor_of_the_newest_visible_event(db: None) -> None:
    assert head() == START
    events = _pings(3)
    newest = Event.objects.get(position=events[-1].position)
    assert head() == cursor_of(newest)
    assert head()[1] == newest.position


def test_cursor_carries_the_transaction_id_only_on_postgresql(db: None) -> None:
    (event,) = _pings(1)
    tx, position = cursor_of(Event.objects.get(position=event.position))
    assert position == event.position
    assert (tx is not None) == (connection.vendor == "postgresql")


def test_oldest_open_transaction_is_none_without_writers_elsewhere(db: None) -> None:
    assert oldest_open_transaction() is None or connection.vendor == "postgresql"
    if connection.vendor != "postgresql":
        assert oldest_open_transaction() is None


def _hold_open_write(started: threading.Event, release: threading.Event) -> None:
    try:
        with transaction.atomic():
            emit(PING, n=-1, note="slow writer")
            started.set()
            release.wait(30)
    finally:
        connections.close_all()


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("reader", ["xid", "table_lock"])
def test_concurrent_writers_lose_and_double_nothing(settings: Any, reader: str) -> None:
    settings.CONSOLE_EVENTS = {"READER": reader}
    writers, per_writer = 4, 600
    done = threading.Event()
    errors: list[BaseException] = []

    def write(seed: int) -> None:
        rng = random.Random(seed)
        try:
            written = 0
            while written < per_writer:
                size = min(rng.randint(1, 20), per_writer - written)
                with batch():
                    for _ in range(size):
                        emit(PING, n=seed * per_writer + written)
                        written += 1
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    seen: list[int] = []

    def read() -> None:
        cursor = START
        try:
            while True:
                finished = done.is_set()
                events = read_batch(cursor, limit=257)
                seen.extend(e.data["n"] for e in events)
                if events:
                    cursor = cursor_of(events[-1])
                elif finished:
                    return
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    reader_thread = threading.Thread(target=read)
    reader_thread.start()
    threads = [threading.Thread(target=write, args=(seed,)) for seed in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader_thread.join(60)
    assert not errors
    assert len(seen) == writers * per_writer
    assert sorted(seen) == list(range(writers * per_writer))


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_open_writing_transaction_holds_readers_back_and_is_shown(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"READER": "xid"}
    started, release = threading.Event(), threading.Event()
    slow = threading.Thread(target=_hold_open_write, args=(started, release))
    slow.start()
    try:
        assert started.wait(10)
        _pings(2)
        # The later, committed pings stay invisible while an older writer may still commit before them.
        assert read_batch(START, limit=10) == []
        oldest = oldest_open_transaction()
        assert oldest is not None
        xid, age = oldest
        assert xid > 0 and age >= 0
    finally:
        release.set()
        slow.join(30)
    events = wait_for(lambda: read_batch(START, limit=10), what="the reader to catch up")
    assert [e.data["n"] for e in events] == [-1, 0, 1]
