"""Pruning old events per type into archive files, in batches, from the maintenance tick.

A type is pruned when ``CONSOLE_EVENTS["RETENTION_DAYS"]`` names it or its declaration sets
``retention_days``; audit types are kept forever unless the setting names them explicitly.

Nothing is deleted that was not archived first: each batch (one type, up to ``RETENTION_BATCH`` events in
position order) is written to one gzip-compressed JSON-lines file in ``ARCHIVE_DIR``, flushed to disk, and
recorded with its SHA-256; its events are then deleted and the seals holding them name the file, in one
transaction. Only sealed events are pruned, so ``events verify`` checks a pruned event against the digest
its seal kept and against the archive's copy. Without ``ARCHIVE_DIR`` nothing is pruned.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.models import Archive, Event, Seal
from console.events.reader import START
from console.events.seal import archive_line, archive_path, hashed_rows_at, in_order, sealed_cursor

log = structlog.get_logger(__name__)

# One tick deletes at most this many batches, so a first run over a huge backlog does not hog the worker.
MAX_BATCHES_PER_TICK = 20
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def retention_policy() -> dict[str, int]:
    """Days to keep, per event type that is pruned at all."""
    configured = events_settings().retention_days
    policy = {
        name: event_type.retention_days
        for name, event_type in catalog.items()
        if event_type.retention_days is not None and not event_type.audit
    }
    policy.update(configured)
    return policy


def archive_name(event_type: str, first: int, last: int) -> str:
    return f"{_UNSAFE.sub('_', event_type)}.{first:012d}-{last:012d}.jsonl.gz"


def _write(name: str, lines: list[str]) -> tuple[str, int]:
    """Write ``lines`` to archive ``name`` durably (whole or not at all); returns its SHA-256 and size."""
    path = archive_path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{name}.partial")
    # mtime=0: the same events always make the same bytes, so a batch retried after a crash matches.
    packed = gzip.compress("".join(line + "\n" for line in lines).encode(), mtime=0)
    with partial.open("wb") as handle:
        handle.write(packed)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)
    return hashlib.sha256(packed).hexdigest(), len(packed)


def _archive_batch(event_type: str, batch: Sequence[tuple[int, datetime, int | None]]) -> Archive:
    """Archive the events of ``batch`` (position, recorded_at, actor) of one type, then delete them."""
    positions = [position for position, _, _ in batch]
    actors = {position: actor_id for position, _, actor_id in batch}
    first, last = min(positions), max(positions)
    name = archive_name(event_type, first, last)
    rows = hashed_rows_at(positions)
    sha256, size = _write(name, [archive_line(row, actors[row[0]]) for row in rows])
    with transaction.atomic():
        archive = Archive.objects.create(
            name=name,
            event_type=event_type,
            first_position=first,
            last_position=last,
            count=len(rows),
            oldest_recorded_at=min(at for _, at, _ in batch),
            newest_recorded_at=max(at for _, at, _ in batch),
            sha256=sha256,
            size=size,
        )
        Event.objects.filter(position__in=positions).delete()
        # Seals whose positions span the batch's: they may hold its events (commit order is not position
        # order, so a span says "maybe"; verify looks a pruned event up in every archive its seal names).
        seals = list(Seal.objects.filter(min_position__lte=last, max_position__gte=first).only("pk", "archives"))
        for seal in seals:
            seal.archives = [*seal.archives, name]
        Seal.objects.bulk_update(seals, ["archives"], batch_size=500)
    return archive


def prune(*, max_batches: int = MAX_BATCHES_PER_TICK) -> dict[str, int]:
    """Archive, then delete, events older than their type's retention; returns deletions per type."""
    conf = events_settings()
    deleted: dict[str, int] = {}
    policy = retention_policy()
    if not policy:
        return deleted
    if not conf.archive_dir:
        log.warning("events.retention_skipped", reason="ARCHIVE_DIR is not set: nothing is deleted unarchived")
        return deleted
    upto = sealed_cursor()
    now = timezone.now()
    batches = 0
    for name, days in sorted(policy.items()):
        cutoff = now - timedelta(days=days)
        while batches < max_batches:
            queryset: QuerySet[Event] = Event.objects.filter(type=name, recorded_at__lt=cutoff)
            if upto is not None:
                queryset = in_order(queryset, START, upto=upto)
            rows = list(
                queryset.order_by("position").values_list("position", "recorded_at", "actor_id")[: conf.retention_batch]
            )
            if not rows:
                break
            _archive_batch(name, rows)
            deleted[name] = deleted.get(name, 0) + len(rows)
            batches += 1
            if len(rows) < conf.retention_batch:
                break
    return deleted


@dataclass(frozen=True)
class TypeRetention:
    """One event type's line on the sealed-log page."""

    name: str
    days: int | None
    audit: bool
    oldest: datetime | None
    archives: list[Archive]


def overview() -> list[TypeRetention]:
    """Every declared or archived type: how long it is kept, its oldest event, its archived ranges."""
    policy = retention_policy()
    archives: dict[str, list[Archive]] = {}
    for archive in Archive.objects.order_by("event_type", "first_position"):
        archives.setdefault(archive.event_type, []).append(archive)
    lines = []
    for name in sorted(set(catalog) | set(archives)):
        declared = catalog.get(name)
        oldest = Event.objects.filter(type=name).order_by("position").values_list("recorded_at", flat=True).first()
        audit = declared is not None and declared.audit
        lines.append(TypeRetention(name, policy.get(name), audit, oldest, archives.get(name, [])))
    return lines
