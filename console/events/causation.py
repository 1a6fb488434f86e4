"""Causation chains: which event, request or job run caused an event, and what it caused in turn.

A ``causation_id`` names whatever the emitting code had at hand: an event's position (``"42"``, or
``"event:42"``), a request (``"request:<id>"``, or a bare id that some event carries as its ``request_id``), or
a stream such as a job run's (``"job-7"``, or ``"job_run:7"``). Each resolves to an event when one exists:
the event itself, the request's first event, the stream's first event, so the chain can go on from there.
An event emitted inside a job run without a causation id of its own was caused by that run.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.db.models.lookups import Exact
from django.urls import reverse
from django.utils.http import urlencode

from console.core.inputs import whole_number
from console.events.db import MetadataText
from console.events.models import Event

# How far a chain is followed, and how many effects are listed.
CHAIN_LIMIT = 20
EFFECTS_LIMIT = 50
# The stream a job run writes to (console.jobs' JobRun.stream_of): named, so this app needs no jobs import.
JOB_STREAM = "job-{}"


@dataclass(frozen=True)
class Cause:
    """One link of a chain: what the causation id names, in words, and the event it resolves to, if any."""

    kind: str  # event, request, job run, stream, unknown
    label: str
    url: str
    event: Event | None


def _first(queryset: QuerySet[Event]) -> Event | None:
    return queryset.select_related("actor").order_by("position").first()


def _list_url(**query: str) -> str:
    return f"{reverse('events:list')}?{urlencode(query)}"


def resolve(causation_id: str) -> Cause:
    """What ``causation_id`` names; ``event`` is None when nothing in the log matches it."""
    prefix, _, rest = causation_id.partition(":")
    if prefix == "event" or not rest:
        position = whole_number(rest if prefix == "event" else causation_id)
        if position is not None:
            event = Event.objects.select_related("actor").filter(position=position).first()
            url = reverse("events:detail", args=[position])
            return Cause("event", f"event #{position}", url, event)
    if prefix == "request" and rest:
        return Cause("request", f"request {rest}", _list_url(request=rest), _first(Event.objects.with_request(rest)))
    if prefix == "job_run" and whole_number(rest) is not None:
        causation_id = JOB_STREAM.format(rest)
    if prefix not in ("request", "event"):
        in_stream = _first(Event.objects.filter(stream_id=causation_id))
        if in_stream is not None:
            kind = "job run" if in_stream.stream_type == "job" else "stream"
            return Cause(kind, f"{kind} {causation_id}", _list_url(stream=causation_id), in_stream)
        of_request = _first(Event.objects.with_request(causation_id))
        if of_request is not None:
            return Cause("request", f"request {causation_id}", _list_url(request=causation_id), of_request)
    return Cause("unknown", causation_id, "", None)


def cause_of(event: Event) -> Cause | None:
    causation_id = str(event.metadata.get("causation_id", "") or "")
    if causation_id:
        return resolve(causation_id)
    run = whole_number(str(event.metadata.get("job_run_id", "") or ""))
    if run is not None and event.stream_id != JOB_STREAM.format(run):
        return resolve(JOB_STREAM.format(run))
    return None


def causes(event: Event) -> list[Cause]:
    """What caused ``event``, nearest first, as far as the log tells (a loop or an unknown cause ends it)."""
    chain: list[Cause] = []
    seen = {event.position}
    current: Event | None = event
    while current is not None and len(chain) < CHAIN_LIMIT:
        cause = cause_of(current)
        if cause is None or (cause.event is not None and cause.event.position in seen):
            break
        chain.append(cause)
        current = cause.event
        if current is not None:
            seen.add(current.position)
    return chain


def effects(event: Event) -> list[Event]:
    """Events whose causation id names ``event``, or its stream when it opened the stream."""
    named = Q(Exact(MetadataText("causation_id"), str(event.position))) | Q(
        Exact(MetadataText("causation_id"), f"event:{event.position}")
    )
    if event.stream_id and _first(Event.objects.filter(stream_id=event.stream_id)) == event:
        named |= Q(Exact(MetadataText("causation_id"), event.stream_id))
    return list(Event.objects.filter(named).exclude(position=event.position).order_by("position")[:EFFECTS_LIMIT])
