"""Pruning old events per type, in batches, from the maintenance tick.

A type is pruned when ``CONSOLE_EVENTS["RETENTION_DAYS"]`` names it or its declaration sets
``retention_days``; audit types are kept forever unless the setting names them explicitly.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.models import Event

# One tick deletes at most this many batches, so a first run over a huge backlog does not hog the worker.
MAX_BATCHES_PER_TICK = 20


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


def prune(*, max_batches: int = MAX_BATCHES_PER_TICK) -> dict[str, int]:
    """Delete events older than their type's retention, a batch per transaction; returns deletions per type."""
    size = events_settings().retention_batch
    now = timezone.now()
    deleted: dict[str, int] = {}
    batches = 0
    for name, days in sorted(retention_policy().items()):
        cutoff = now - timedelta(days=days)
        while batches < max_batches:
            positions = list(
                Event.objects.filter(type=name, recorded_at__lt=cutoff)
                .order_by("position")
                .values_list("position", flat=True)[:size]
            )
            if not positions:
                break
            with transaction.atomic():
                Event.objects.filter(position__in=positions).delete()
            deleted[name] = deleted.get(name, 0) + len(positions)
            batches += 1
            if len(positions) < size:
                break
    return deleted
