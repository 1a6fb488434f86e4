"""The app's settings are checked at start-up, and the tick hands abandoned rebuilds to a new task."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from console.eventsourcing.conf import check_settings
from console.eventsourcing.models import RebuildRun
from console.eventsourcing.replay import redispatch_stale


def _ids(settings: Any, value: object) -> list[str]:
    settings.CONSOLE_EVENTSOURCING = value
    return [str(error.id) for error in check_settings(None)]


def test_good_settings_pass_and_bad_ones_are_named(settings: Any) -> None:
    assert _ids(settings, {"SNAPSHOT_EVERY": {"account": 20}, "REBUILD_BATCH": 100}) == []
    assert _ids(settings, "not a dict") == ["console.eventsourcing.E001"]
    assert _ids(settings, {"BOGUS": 1}) == ["console.eventsourcing.E002"]
    assert _ids(settings, {"SNAPSHOT_EVERY": {"account": -1}}) == ["console.eventsourcing.E004"]
    assert _ids(settings, {"SNAPSHOT_EVERY": {"account": "often"}}) == ["console.eventsourcing.E003"]
    assert _ids(settings, {"REBUILD_BATCH": 0}) == ["console.eventsourcing.E003"]
    assert _ids(settings, {"REBUILD_STALE_SECONDS": "soon"}) == ["console.eventsourcing.E003"]


def test_the_tick_redispatches_only_rebuilds_whose_task_went_quiet(db: None) -> None:
    old = timezone.now() - timedelta(hours=1)
    stale = RebuildRun.objects.create(projection="accounts.balances", generation=1, status="running")
    RebuildRun.objects.filter(pk=stale.pk).update(created_at=old, heartbeat_at=old)
    RebuildRun.objects.create(
        projection="accounts.activity", generation=1, status="running", heartbeat_at=timezone.now()
    )
    done = RebuildRun.objects.create(projection="accounts.activity", generation=2, status="live")
    RebuildRun.objects.filter(pk=done.pk).update(created_at=old)
    assert redispatch_stale() == 1
