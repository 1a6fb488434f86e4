"""``emit()``: one call that logs, persists, counts and publishes a declared event.

``emit()`` checks the fields against the declaration, then hands the event to the sinks with the bound
context (request, correlation and causation ids): the log sink appends it (in the caller's transaction),
then the metric and publishing sinks read the same record, whatever the level. Only then is it logged,
through structlog on the ``console.events`` logger, like any other line. The sinks run in ``emit()`` itself,
not as a structlog processor, so a site's own logging configuration can never leave its events unstored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import structlog
from django.conf import settings
from django.db import transaction

from console.events.catalog import EventType, InvalidEventFields, UndeclaredEvent, lookup
from console.events.conf import events_settings

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from console.events.models import Event

logger = structlog.get_logger("console.events")
warnings_log = logging.getLogger("console.events.policy")


# Metadata keys copied from the bound context into every persisted event.
METADATA_KEYS = ("request_id", "correlation_id", "causation_id", "job_run_id", "ip")


@dataclass
class Emit:
    """What ``emit()`` hands to the sinks, and what they hand back (the stored ``Event``)."""

    event_type: EventType
    fields: dict[str, Any]
    actor_id: int | None
    stream_type: str
    stream_id: str
    version: int | None
    problems: list[str] = field(default_factory=list)
    stored: Event | None = None


EmitSink = Callable[[Emit, Mapping[str, Any]], None]
_emit_sinks: list[EmitSink] = []
_batch: ContextVar[list[Event] | None] = ContextVar("console_event_batch", default=None)


def register_emit_sink(sink: EmitSink) -> None:
    """Add a sink that sees every emitted declared event (metrics and publishing register here)."""
    if sink not in _emit_sinks:
        _emit_sinks.append(sink)


def strict() -> bool:
    """Declaration mismatches raise with CONSOLE_EVENTS["STRICT"] (default: DEBUG); else they warn, kept."""
    configured = events_settings().strict
    return bool(settings.DEBUG) if configured is None else configured


def emit(
    event: str | EventType,
    /,
    *,
    actor: AbstractBaseUser | int | None = None,
    stream_type: str = "",
    stream_id: str = "",
    version: int | None = None,
    **fields: Any,
) -> Event | None:
    """Emit a declared event with ``fields``; returns the stored ``Event`` when the type is persisted.

    Call it inside the transaction that makes the change it describes: the event is written in that
    transaction, so a change that rolls back leaves no event behind.
    """
    problems: list[str] = []
    if isinstance(event, EventType):
        event_type = event
    else:
        try:
            event_type = lookup(event)
        except UndeclaredEvent:
            if strict():
                raise
            problems.append("undeclared event type")
            event_type = EventType(name=event, description="(undeclared)")
    problems.extend(event_type.check(fields))
    if problems and strict() and "undeclared event type" not in problems:
        raise InvalidEventFields(f"event {event_type.name!r}: {'; '.join(problems)}")

    # Without an explicit actor the request's user is used: build_event reads it from the bound context.
    actor_id = actor if isinstance(actor, int) or actor is None else actor.pk
    record = Emit(event_type, fields, actor_id, stream_type, stream_id, version, problems)
    run_sinks(record, structlog.contextvars.get_contextvars())
    line = fields
    if record.stored is not None and record.stored.position is not None:
        line = {**fields, "position": record.stored.position}
    getattr(logger, event_type.level)(event_type.name, **line)
    return record.stored


def build_event(record: Emit, context: Mapping[str, Any]) -> Event:
    from console.events.models import Event

    if record.actor_id is None:
        bound_user = context.get("user_id")
        record.actor_id = bound_user if isinstance(bound_user, int) else None
    metadata = {key: context[key] for key in METADATA_KEYS if context.get(key) is not None}
    if record.problems:
        metadata["problems"] = record.problems
    return Event(
        type=record.event_type.name,
        schema_version=record.event_type.schema_version,
        stream_type=record.stream_type,
        stream_id=record.stream_id,
        version=record.version,
        data=record.fields,
        metadata=metadata,
        actor_id=record.actor_id,
    )


def persist_sink(record: Emit, context: Mapping[str, Any]) -> None:
    if not record.event_type.persist:
        return
    event = build_event(record, context)
    pending = _batch.get()
    if pending is not None:
        pending.append(event)
    else:
        from console.events.reader import lock_for_append, uses_table_lock

        if uses_table_lock():
            with transaction.atomic():
                lock_for_append()
                event.save(force_insert=True)
        else:
            event.save(force_insert=True)
    record.stored = event


def run_sinks(record: Emit, context: Mapping[str, Any]) -> None:
    """Store the event, then let the other sinks (metrics, publishing) see it."""
    if record.problems:
        warnings_log.warning("event %s emitted with problems: %s", record.event_type.name, "; ".join(record.problems))
    persist_sink(record, context)
    for extra in _emit_sinks:
        extra(record, context)


@contextmanager
def batch() -> Iterator[list[Event]]:
    """Collect the events emitted inside the block and append them with one ``bulk_create`` at its end.

    Used by code that emits many events in one transaction (seeding, bulk actions, tasks that process a
    batch); the events still commit or roll back with the surrounding transaction.
    """

    if _batch.get() is not None:
        yield _batch.get() or []
        return
    pending: list[Event] = []
    token = _batch.set(pending)
    try:
        with transaction.atomic():
            yield pending
            _batch.set(None)
            if pending:
                from console.events.append import insert_events
                from console.events.reader import lock_for_append

                lock_for_append()
                insert_events(pending)
    finally:
        _batch.reset(token)
