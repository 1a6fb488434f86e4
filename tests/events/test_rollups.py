"""Rollups equal what the log says, by minute, hour and day, after catching up and after a rebuild."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import override_settings
from django.utils import timezone

from console.events import rollups
from console.events.models import Checkpoint, Event, Grain, Rollup
from console.events.services import rollups_rebuild
from console.events.subscriptions import catch_up

pytestmark = pytest.mark.django_db

# These tests write the log at fixed times in the past: keep every grain of bucket for them.
KEEP_ALL = {"ROLLUP_KEEP_DAYS": {"minute": 100_000, "hour": 100_000, "day": 100_000}}


@pytest.fixture(autouse=True)
def keep_every_bucket(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {**settings.CONSOLE_EVENTS, **KEEP_ALL}


STATUSES = ["succeeded", "failed", "failed", "succeeded", "lost"]
COMMANDS = ["check", "migrate", "clearsessions"]


def append(event_type: str, at: datetime, **data: Any) -> Event:
    # Written as the log writes it, with the time it would have had: boundaries need exact times.
    return Event.objects.create(type=event_type, data=data, recorded_at=at)


def mixed_workload(start: datetime, n: int = 600, seed: int = 7) -> None:
    chooser = random.Random(seed)
    for i in range(n):
        at = start + timedelta(seconds=chooser.randrange(0, 3 * 86400))
        kind = chooser.choice(["job", "job-lost", "message", "failure", "webhook", "audit"])
        if kind == "job":
            append(
                "job.finished",
                at,
                run_id=i,
                command=chooser.choice(COMMANDS),
                status=chooser.choice(STATUSES[:4]),
                exit_code=0,
                seconds=chooser.choice([0.2, 1.5, 3.0, 45.0]),
            )
        elif kind == "job-lost":
            append("job.lost", at, run_id=i, command="migrate", worker_host="h", heartbeat_at="x")
        elif kind == "message":
            append("message.sent", at, message_id=i, message_type="welcome", channel="email", attempts=1)
        elif kind == "failure":
            append(
                "message.failed",
                at,
                message_id=i,
                message_type="reset",
                channel=chooser.choice(["email", "sms"]),
                failure_class="permanent",
            )
        elif kind == "webhook":
            append("webhook.attempted", at, endpoint_id=3, delivery_id=i, ok=chooser.random() < 0.7, ms=120)
        else:
            append("auth.logged_in", at, username="ops")


def direct(grain: int) -> Counter[tuple[str, str, datetime]]:
    """The counts the rollups must hold, computed straight from the log."""
    counted: Counter[tuple[str, str, datetime]] = Counter()
    for event in Event.objects.order_by("position"):
        epoch = int(event.recorded_at.timestamp())
        bucket = datetime.fromtimestamp(epoch - epoch % grain, tz=UTC)
        counted["events.type", event.type, bucket] += 1
        data = event.data
        if event.type in ("job.finished", "job.lost"):
            status = data.get("status", "lost")
            counted["jobs.runs", status, bucket] += 1
            counted["jobs.command", data["command"], bucket] += 1
            if status in ("failed", "lost"):
                counted["jobs.command_failed", data["command"], bucket] += 1
        elif event.type == "message.sent":
            counted["messages.outcome", "sent", bucket] += 1
            counted["messages.sent_type", data["message_type"], bucket] += 1
            counted["messages.sent_channel", data["channel"], bucket] += 1
        elif event.type == "message.failed":
            counted["messages.outcome", "failed", bucket] += 1
            counted["messages.failed_type", data["message_type"], bucket] += 1
            counted["messages.failed_channel", data["channel"], bucket] += 1
            counted["messages.failure_class", data["failure_class"], bucket] += 1
        elif event.type == "webhook.attempted":
            outcome = "succeeded" if data["ok"] else "failed"
            counted["webhooks.attempts", outcome, bucket] += 1
            counted[f"webhooks.endpoint.{data['endpoint_id']}", outcome, bucket] += 1
    return counted


def stored(grain: int) -> Counter[tuple[str, str, datetime]]:
    return Counter(
        {
            (series, key, bucket): count
            for series, key, bucket, count in Rollup.objects.filter(grain=grain).values_list(
                "series", "key", "bucket", "count"
            )
        }
    )


def test_it_equals_direct_counts_after_a_mixed_workload_and_after_a_rebuild(staff: User) -> None:
    mixed_workload(datetime(2026, 3, 1, 22, 30, tzinfo=UTC))
    catch_up(rollups.NAME)
    for grain in Grain.values:
        assert stored(grain) == direct(grain)

    # More arrives, is counted on top of what was stored, and a rebuild from nothing agrees.
    mixed_workload(datetime(2026, 3, 2, 23, 0, tzinfo=UTC), n=300, seed=8)
    catch_up(rollups.NAME)
    for grain in Grain.values:
        assert stored(grain) == direct(grain)

    rollups_rebuild(actor=staff)
    assert Event.objects.filter(type="rollups.rebuilt", actor=staff).exists()
    catch_up(rollups.NAME)
    for grain in Grain.values:
        assert stored(grain) == direct(grain)
    assert Checkpoint.objects.get(name=rollups.NAME).handled == Event.objects.count()


def test_it_splits_buckets_at_an_hour_and_a_day_boundary() -> None:
    last_second = datetime(2026, 3, 1, 23, 59, 59, 999000, tzinfo=UTC)
    append("job.finished", last_second, run_id=1, command="check", status="failed", exit_code=1, seconds=2)
    append(
        "job.finished",
        last_second + timedelta(milliseconds=1),
        run_id=2,
        command="check",
        status="failed",
        exit_code=1,
        seconds=2,
    )
    catch_up(rollups.NAME)

    def buckets(grain: int) -> dict[datetime, int]:
        return dict(Rollup.objects.filter(series="jobs.runs", grain=grain).values_list("bucket", "count"))

    assert buckets(Grain.MINUTE) == {
        datetime(2026, 3, 1, 23, 59, tzinfo=UTC): 1,
        datetime(2026, 3, 2, 0, 0, tzinfo=UTC): 1,
    }
    assert buckets(Grain.HOUR) == {datetime(2026, 3, 1, 23, tzinfo=UTC): 1, datetime(2026, 3, 2, tzinfo=UTC): 1}
    assert buckets(Grain.DAY) == {datetime(2026, 3, 1, tzinfo=UTC): 1, datetime(2026, 3, 2, tzinfo=UTC): 1}


def test_it_keeps_durations_for_percentiles() -> None:
    at = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for i, seconds in enumerate([1.0] * 90 + [40.0] * 10):
        append("job.finished", at, run_id=i, command="migrate", status="succeeded", exit_code=0, seconds=seconds)
    catch_up(rollups.NAME)
    # A later batch without durations for the same buckets adds to the count and keeps the histogram.
    append("job.lost", at, run_id=101, command="migrate", worker_host="h", heartbeat_at="x")
    catch_up(rollups.NAME)
    total = rollups.totals("jobs.command", grain=Grain.DAY, start=at - timedelta(days=1), end=at + timedelta(days=1))
    bucket = total["migrate"]
    assert bucket.count == 101 and sum(bucket.histogram) == 100
    assert bucket.total == pytest.approx(490.0)
    median, slowest = bucket.percentile(0.5), bucket.percentile(0.99)
    assert median is not None and 0.5 < median <= 1.0
    assert slowest is not None and 20 < slowest <= 50


def test_it_prunes_each_grain_after_its_own_age() -> None:
    now = datetime(2026, 3, 20, tzinfo=UTC)
    append("auth.logged_in", now - timedelta(days=3), username="a")
    append("auth.logged_in", now - timedelta(days=12), username="b")
    catch_up(rollups.NAME)
    with override_settings(CONSOLE_EVENTS={"ROLLUP_KEEP_DAYS": {"day": 60}}):
        deleted = rollups.prune(now=now)
    assert deleted == {"minute": 2, "hour": 1}
    assert Rollup.objects.filter(grain=Grain.DAY).count() == 2
    assert Rollup.objects.filter(grain=Grain.HOUR).count() == 1
    assert not Rollup.objects.filter(grain=Grain.MINUTE).exists()


def test_it_makes_no_buckets_that_pruning_would_delete(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"ROLLUP_KEEP_DAYS": {}}
    now = timezone.now()
    append("auth.logged_in", now - timedelta(days=5), username="old")
    append("auth.logged_in", now, username="new")
    catch_up(rollups.NAME)
    grains = Counter(Rollup.objects.values_list("grain", flat=True))
    assert grains == {Grain.MINUTE: 1, Grain.HOUR: 2, Grain.DAY: 2}
