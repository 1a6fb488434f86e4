"""Bulk appends fill in what the database assigns, exactly as saving one event does."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.db import connection, transaction
from django.utils import timezone

from console.events.models import Event
from console.events.pipeline import batch, emit
from tests.events.conftest import PING


def test_a_batch_sets_position_time_and_transaction_like_a_single_save(db: None) -> None:
    single = emit(PING, n=0)
    with batch():
        stored = [emit(PING, n=n, note="naïve “quotes” ✓") for n in range(1, 1201)]
    assert single is not None and all(event is not None for event in stored)
    events = [event for event in stored if event is not None]
    positions = [event.position for event in events]
    assert positions == sorted(positions) and len(set(positions)) == 1200 and positions[0] > single.position
    for event in (events[0], events[-1]):
        loaded = Event.objects.get(position=event.position)
        assert isinstance(event.recorded_at, datetime) and timezone.is_aware(event.recorded_at)
        assert event.recorded_at == loaded.recorded_at
        assert event.tx == loaded.tx
        assert loaded.data == event.data and loaded.data["note"] == "naïve “quotes” ✓"
        assert not event._state.adding
    assert (events[0].tx is not None) == (connection.vendor == "postgresql")


def test_a_batch_rolls_back_with_its_transaction(db: None) -> None:
    with pytest.raises(RuntimeError), transaction.atomic(), batch():
        emit(PING, n=1)
        raise RuntimeError("the change failed")
    assert not Event.objects.filter(type="test.ping").exists()


def test_backfills_with_explicit_times_keep_them(db: None) -> None:
    from console.events.append import insert_events

    when = timezone.now().replace(year=2020)
    event = Event(type="test.ping", data={"n": 1}, recorded_at=when)
    with transaction.atomic():
        insert_events([event])
    assert Event.objects.get(position=event.position).recorded_at == when
