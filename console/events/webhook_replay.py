"""Replaying a range of the log to one webhook endpoint, and queueing what a re-enabled endpoint missed: a core
operation, run by a worker in batches.

The range is fixed when the user starts it: positions ``after < p <= upto`` and, for a time range, recorded
between ``since`` and ``until``, of the types the endpoint receives then. Each batch queues one delivery per
event (``replay=True``, the usual message id ``evt_<position>`` so receivers can tell a repeat) and moves the
operation's cursor in the same transaction, so a replay resumed after a crash or stopped by a cancel queues
every event of its range once at most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Max, Min
from django.utils.dateparse import parse_datetime

from console.core.models import Operation
from console.events.models import Event, EventQuerySet, WebhookDelivery, WebhookEndpoint
from console.events.webhook_sender import delivery_of, dispatch_on_commit, published_types

KIND = "events.webhook_replay"
BATCH = 500


@dataclass(frozen=True)
class ReplayRange:
    after: int
    upto: int
    types: tuple[str, ...]
    since: datetime | None = None
    until: datetime | None = None

    def params(self) -> dict[str, Any]:
        return {
            "after": self.after,
            "upto": self.upto,
            "types": list(self.types),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
        }

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ReplayRange:
        return cls(
            after=int(params["after"]),
            upto=int(params["upto"]),
            types=tuple(params["types"]),
            since=parse_datetime(params["since"]) if params.get("since") else None,
            until=parse_datetime(params["until"]) if params.get("until") else None,
        )

    def events(self, *, after: int | None = None) -> EventQuerySet:
        found = Event.objects.filter(
            position__gt=self.after if after is None else after, position__lte=self.upto, type__in=self.types
        )
        return _recorded_between(found, self.since, self.until).order_by("position")

    def count(self, cap: int) -> int:
        """How many events the replay delivers, counting no further than ``cap + 1``."""
        return self.events()[: cap + 1].count()


def _recorded_between(found: EventQuerySet, since: datetime | None, until: datetime | None) -> EventQuerySet:
    """Events recorded from ``since`` to ``until`` inclusive, exact on both databases.

    SQLite compares the stored text, which has milliseconds, with a parameter that has microseconds, so an
    event at exactly ``since`` would be missed by ``>=``: ``>`` the microsecond before is exact (the mirror of
    ``EventQuerySet.recorded_by``). An end at the very edge of the calendar bounds nothing.
    """
    if since is not None and since > datetime.min.replace(tzinfo=since.tzinfo):
        found = found.filter(recorded_at__gt=since - timedelta(microseconds=1))
    if until is not None and until < datetime.max.replace(tzinfo=until.tzinfo):
        found = found.recorded_by(until)
    return found


def types_of(endpoint: WebhookEndpoint) -> tuple[str, ...]:
    published = published_types()
    return tuple(sorted(published & set(endpoint.event_types) if endpoint.event_types else published))


def by_positions(endpoint: WebhookEndpoint, first: int | None, last: int | None) -> ReplayRange:
    """Positions ``first`` to ``last`` inclusive; an open end is the start or the end of the log."""
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    return ReplayRange(
        after=(first or 1) - 1, upto=newest if last is None else min(last, newest), types=types_of(endpoint)
    )


def by_time(endpoint: WebhookEndpoint, since: datetime | None, until: datetime | None) -> ReplayRange:
    """Events recorded from ``since`` to ``until`` inclusive, found by the positions they span."""
    found = _recorded_between(Event.objects.all(), since, until)
    span = found.aggregate(first=Min("position"), last=Max("position"))
    if span["first"] is None:
        return ReplayRange(after=0, upto=0, types=types_of(endpoint), since=since, until=until)
    return ReplayRange(after=span["first"] - 1, upto=span["last"], types=types_of(endpoint), since=since, until=until)


def run_replay(operation: Operation) -> None:
    """The operation's worker body: queue the range's deliveries batch by batch, from where it got to.

    With ``missed`` (re-enabling an endpoint "from where it stopped") it queues only the events the endpoint
    has no delivery of yet, as ordinary deliveries: it never had them, so they are no replays.
    """
    endpoint = WebhookEndpoint.objects.get(pk=operation.params["endpoint"])
    replay = ReplayRange.from_params(operation.params)
    missed = bool(operation.params.get("missed"))
    cursor = int(operation.progress.get("cursor", replay.after))
    while True:
        batch = list(replay.events(after=cursor).values_list("position", "type")[:BATCH])
        if not batch:
            return
        with transaction.atomic():
            known: set[int] = set()
            if missed:
                known = set(
                    endpoint.deliveries.filter(
                        event_position__gte=batch[0][0], event_position__lte=batch[-1][0]
                    ).values_list("event_position", flat=True)
                )
            WebhookDelivery.objects.bulk_create(
                delivery_of(endpoint, position, event_type, replay=not missed)
                for position, event_type in batch
                if position not in known
            )
            # Raises OperationCancelled when a cancel was asked: this batch is then rolled back with it.
            operation.advance(len(batch), cursor=batch[-1][0])
            dispatch_on_commit()
        cursor = batch[-1][0]
