"""Rollups: counts over time, kept by a checkpointed subscriber of the log, for the console's charts.

The ``events.rollups`` subscriber reads the log in commit order and adds each event to per-minute, per-hour
and per-day buckets in the transaction that moves its checkpoint, so the rollups are exactly what the log
says and can be dropped and rebuilt from it (``services.rollups_rebuild``). What is counted is registered by
the apps that own the event types (``count("job.finished", tallies)``): the events app knows none of them and
counts only every event by its type (series ``events.type``). A tally is ``(series, key, value)``: ``key`` must
come from a bounded set (a status, a command name, a message class), ``value`` (seconds, milliseconds) feeds
the bucket's sum and histogram, from which percentiles are estimated.

Minute buckets serve the last hour, hour buckets the last day and week, day buckets the last month; each
grain is pruned after its own age (``ROLLUP_KEEP_DAYS``). Buckets start on UTC boundaries.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from django.db import connections, router, transaction
from django.db.models import Sum
from django.utils import timezone

from console.core.charts import ChartRange, Link, Series, per_bar
from console.events.conf import ROLLUP_KEEP_DAYS, events_settings
from console.events.models import Grain, Rollup
from console.events.records import StoredEvent
from console.events.subscriptions import Subscriber

NAME = "events.rollups"
EVENTS_BY_TYPE = "events.type"
# Histogram bounds (upper, inclusive) on a 1-2-5 scale from a millisecond's worth to a day's worth of units;
# one more slot counts what lies above the last bound. Percentiles are estimated within a slot, so they are
# as exact as the scale's steps: good enough to see a job that now takes three times longer.
BOUNDS: tuple[float, ...] = tuple(m * 10.0**e for e in range(-3, 6) for m in (1, 2, 5))
GRAINS: tuple[int, ...] = tuple(Grain.values)

Tally = tuple[str, str, float | None]
Tallies = Callable[[Mapping[str, Any]], Iterable[Tally]]

_counters: dict[str, list[Tallies]] = {}


def count(event_type: str, tallies: Tallies) -> None:
    """Count events of ``event_type``: ``tallies(event.data)`` names the (series, key, value) each adds to."""
    registered = _counters.setdefault(event_type, [])
    if tallies not in registered:
        registered.append(tallies)


def counted_types() -> frozenset[str]:
    return frozenset(_counters)


def slot(value: float) -> int:
    return bisect.bisect_left(BOUNDS, value)


def _empty_histogram() -> list[int]:
    return [0] * (len(BOUNDS) + 1)


@dataclass
class Bucket:
    """One bucket's sums while a batch is added up, or as read back for a chart."""

    count: int = 0
    total: float = 0.0
    histogram: list[int] = field(default_factory=list)

    def add(self, value: float | None, times: int = 1) -> None:
        self.count += times
        if value is not None:
            self.total += value * times
            if not self.histogram:
                self.histogram = _empty_histogram()
            self.histogram[slot(value)] += times

    def merge(self, count: int, total: float, histogram: Sequence[int]) -> None:
        self.count += count
        self.total += total
        if histogram:
            if not self.histogram:
                self.histogram = _empty_histogram()
            for index, amount in enumerate(histogram[: len(self.histogram)]):
                self.histogram[index] += amount

    def percentile(self, fraction: float) -> float | None:
        """The value below which ``fraction`` of the values lie, interpolated within its histogram slot."""
        observed = sum(self.histogram)
        if not observed:
            return None
        rank = fraction * observed
        seen = 0
        for index, amount in enumerate(self.histogram):
            if amount and seen + amount >= rank:
                low = BOUNDS[index - 1] if index > 0 else 0.0
                high = BOUNDS[index] if index < len(BOUNDS) else BOUNDS[-1] * 2
                return low + (high - low) * ((rank - seen) / amount)
            seen += amount
        return BOUNDS[-1]


Key = tuple[str, int, int, str]  # series, grain, bucket start (epoch seconds), key


def kept_since(now: datetime | None = None) -> dict[int, int]:
    """Per grain, the epoch second before which its buckets are pruned (``ROLLUP_KEEP_DAYS``)."""
    keep = {**ROLLUP_KEEP_DAYS, **events_settings().rollup_keep_days}
    epoch = int((now or timezone.now()).timestamp())
    return {grain.value: epoch - keep[grain.label] * 86400 for grain in Grain}


def tally(events: Iterable[StoredEvent]) -> dict[Key, Bucket]:
    """Add ``events`` up into buckets of every grain they are still kept in.

    Buckets that pruning would delete are not made at all: a rebuild over a month of log writes minute buckets
    for the last two days only, not for thirty.
    """
    sums: dict[Key, Bucket] = {}
    counters = _counters
    since = kept_since()
    for event in events:
        epoch = int(event.recorded_at.timestamp())
        tallies: list[Tally] = [(EVENTS_BY_TYPE, event.type, None)]
        for tallies_of in counters.get(event.type, ()):
            tallies.extend(tallies_of(event.data))
        for grain in GRAINS:
            start = epoch - epoch % grain
            if start < since[grain]:
                continue
            for series, key, value in tallies:
                index = (series, grain, start, key[:200])
                bucket = sums.get(index)
                if bucket is None:
                    bucket = sums[index] = Bucket()
                bucket.add(value)
    return sums


def _moment(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=UTC)


# Counts and sums are added in the database; a histogram cannot be, so buckets with one are read first and
# written back merged. The ORM has no spelling for "add on conflict", and its bulk_create costs more per row
# than the whole tally: this is one statement, executed for all rows at once.
UPSERT = (
    "INSERT INTO {table} (series, {key}, grain, bucket, {count}, total, histogram) VALUES (%s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (series, grain, bucket, {key}) DO UPDATE SET {count} = {table}.{count} + excluded.{count},"
    " total = {table}.total + excluded.total"
)
# Buckets that got values in this batch: their histogram was merged with the stored one before writing.
WITH_HISTOGRAM = ", histogram = excluded.histogram"


def store(sums: Mapping[Key, Bucket]) -> None:
    """Add ``sums`` to the stored buckets. Only the subscriber writes rollups, one batch at a time (its
    checkpoint row is locked), so reading histograms and writing them back merged loses nothing."""
    if not sums:
        return
    histograms: dict[Key, list[int]] = {}
    by_grain: dict[int, set[int]] = {}
    for index, bucket in sums.items():
        if bucket.histogram:
            histograms[index] = list(bucket.histogram)
            by_grain.setdefault(index[1], set()).add(index[2])
    series = {index[0] for index in histograms}
    for grain, starts in by_grain.items():
        existing = Rollup.objects.filter(
            grain=grain, bucket__in=[_moment(start) for start in starts], series__in=series
        ).values_list("series", "bucket", "key", "histogram")
        for name, moment, key, stored_histogram in existing:
            merged = histograms.get((name, grain, int(moment.timestamp()), key))
            if merged is not None and stored_histogram:
                for slot_index, amount in enumerate(stored_histogram[: len(merged)]):
                    merged[slot_index] += amount
    connection = connections[router.db_for_write(Rollup)]
    quote = connection.ops.quote_name
    histogram_field = Rollup._meta.get_field("histogram")
    empty = histogram_field.get_db_prep_save([], connection)
    adapted: dict[int, Any] = {}
    plain, valued = [], []
    for index, bucket in sums.items():
        name, grain, start, key = index
        when = adapted.get(start)
        if when is None:
            when = adapted[start] = connection.ops.adapt_datetimefield_value(_moment(start))
        merged = histograms.get(index)
        if merged is None:
            plain.append((name, key, grain, when, bucket.count, bucket.total, empty))
        else:
            histogram = histogram_field.get_db_prep_save(merged, connection)
            valued.append((name, key, grain, when, bucket.count, bucket.total, histogram))
    sql = UPSERT.format(table=quote(Rollup._meta.db_table), key=quote("key"), count=quote("count"))
    with connection.cursor() as cursor:
        if plain:
            cursor.executemany(sql, plain)
        if valued:
            cursor.executemany(sql + WITH_HISTOGRAM, valued)


class RollupSubscriber(Subscriber):
    """Adds every event of the log to the rollups, in the transaction that moves its checkpoint."""

    name: ClassVar[str] = NAME
    batch_size: ClassVar[int] = 5000
    reads_records: ClassVar[bool] = True

    def handle(self, events: Sequence[StoredEvent]) -> None:
        store(tally(events))


def reset() -> None:
    """Forget every rollup; the caller moves the subscriber's checkpoint back to the start of the log."""
    Rollup.objects.all().delete()


def prune(*, now: datetime | None = None) -> dict[str, int]:
    """Delete buckets older than their grain's ``ROLLUP_KEEP_DAYS``; returns deletions per grain."""
    since = kept_since(now)
    deleted: dict[str, int] = {}
    for grain in Grain:
        with transaction.atomic():
            count, _ = Rollup.objects.filter(grain=grain.value, bucket__lt=_moment(since[grain.value])).delete()
        if count:
            deleted[grain.label] = count
    return deleted


def buckets(
    series: str, *, grain: int, start: datetime, end: datetime, keys: Iterable[str] | None = None
) -> dict[str, dict[datetime, Bucket]]:
    """The stored buckets of ``series`` starting in ``[start, end)``, by key and start."""
    rows = Rollup.objects.window(series, grain, start, end)
    if keys is not None:
        rows = rows.filter(key__in=list(keys))
    found: dict[str, dict[datetime, Bucket]] = {}
    for key, moment, stored_count, stored_total, stored_histogram in rows.values_list(
        "key", "bucket", "count", "total", "histogram"
    ):
        found.setdefault(key, {})[moment] = Bucket(stored_count, stored_total, list(stored_histogram or []))
    return found


def totals(series: str, *, grain: int, start: datetime, end: datetime) -> dict[str, Bucket]:
    """Each key's buckets of ``series`` in ``[start, end)`` added up into one."""
    summed: dict[str, Bucket] = {}
    for key, by_start in buckets(series, grain=grain, start=start, end=end).items():
        total = summed[key] = Bucket()
        for bucket in by_start.values():
            total.merge(bucket.count, bucket.total, bucket.histogram)
    return summed


@dataclass(frozen=True)
class Part:
    """One key of a series drawn as one series of a chart."""

    key: str
    label: str
    tone: str = ""
    link: Link | None = None


def counts(
    series: str, *, grain: int, start: datetime, end: datetime, keys: Iterable[str] | None = None
) -> dict[str, dict[datetime, int]]:
    """The counts of ``series``'s buckets starting in ``[start, end)``, by key and start: what a chart's bars
    need, without reading the sums and histograms."""
    rows = Rollup.objects.window(series, grain, start, end).order_by()
    if keys is not None:
        rows = rows.filter(key__in=list(keys))
    found: dict[str, dict[datetime, int]] = {}
    for key, moment, stored_count in rows.values_list("key", "bucket", "count"):
        found.setdefault(key, {})[moment] = stored_count
    return found


def over_time(
    series: str, chart_range: ChartRange, parts: Sequence[Part], *, now: datetime | None = None
) -> tuple[list[datetime], list[Series]]:
    """The bars' starts for ``chart_range`` and, per part, its counts in each bar."""
    starts = chart_range.starts(now)
    end = starts[-1] + timedelta(seconds=chart_range.bar)
    found = counts(series, grain=chart_range.grain, start=starts[0], end=end, keys=[part.key for part in parts])
    drawn = [
        Series(part.label, per_bar(found.get(part.key, {}), starts, chart_range.bar), part.link, part.tone)
        for part in parts
    ]
    return starts, drawn


def all_over_time(
    series: str, chart_range: ChartRange, *, now: datetime | None = None
) -> tuple[list[datetime], list[float]]:
    """The bars' starts for ``chart_range`` and every key of ``series`` counted together in each bar."""
    starts = chart_range.starts(now)
    end = starts[-1] + timedelta(seconds=chart_range.bar)
    rows = Rollup.objects.window(series, chart_range.grain, starts[0], end).order_by()
    summed = dict(rows.values_list("bucket").annotate(n=Sum("count")).values_list("bucket", "n"))
    return starts, per_bar(summed, starts, chart_range.bar)


def busiest_keys(series: str, chart_range: ChartRange, *, limit: int, now: datetime | None = None) -> list[str]:
    """The keys of ``series`` with the most counted in ``chart_range``, most first."""
    starts = chart_range.starts(now)
    end = starts[-1] + timedelta(seconds=chart_range.bar)
    rows = Rollup.objects.window(series, chart_range.grain, starts[0], end).order_by()
    summed = rows.values_list("key").annotate(n=Sum("count")).values_list("key", "n")
    return [key for key, _ in sorted(summed, key=lambda item: (-item[1], item[0]))[:limit]]


def range_totals(series: str, chart_range: ChartRange, *, now: datetime | None = None) -> dict[str, Bucket]:
    starts = chart_range.starts(now)
    return totals(series, grain=chart_range.grain, start=starts[0], end=starts[-1] + timedelta(seconds=chart_range.bar))
