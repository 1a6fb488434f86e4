"""The catalog of declared event types.

An event type is declared once, in code, with a stable low-cardinality name (``job.finished``), the fields it
carries, and the policy that decides what happens when it is emitted: logged at which level, persisted to
the log or not, which metrics it feeds, whether it is published to other systems, how long it is kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Literal

LEVELS = ("debug", "info", "warning", "error", "critical")


class UndeclaredEvent(LookupError):
    """An event name that no code declared."""


class InvalidEventFields(ValueError):
    """An emitted event whose fields do not match its declaration."""


@dataclass(frozen=True)
class Metric:
    """A Prometheus metric derived from an event type.

    ``labels`` name event fields whose values become label values; each must have a bounded set of values
    (``allowed``), so a typo or an id can never explode the series count: anything else becomes ``other``.
    """

    name: str
    kind: Literal["counter", "histogram"]
    description: str
    labels: tuple[str, ...] = ()
    allowed: dict[str, tuple[str, ...]] = field(default_factory=dict)
    value_field: str | None = None
    buckets: tuple[float, ...] = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


@dataclass(frozen=True)
class EventType:
    name: str
    description: str
    level: str = "info"
    schema_version: int = 1
    persist: bool = True
    publish: bool = False
    audit: bool = False
    required: frozenset[str] = frozenset()
    optional: frozenset[str] = frozenset()
    metrics: tuple[Metric, ...] = ()
    retention_days: int | None = None

    @cached_property
    def fields(self) -> frozenset[str]:
        return self.required | self.optional

    def check(self, fields: Iterable[str]) -> list[str]:
        """Problems with ``fields`` for this type, in words; empty when they match the declaration."""
        given = fields.keys() if isinstance(fields, dict) else set(fields)
        # The common case, checked with two set comparisons: emit() runs this on every call.
        if self.required <= given and given <= self.fields:
            return []
        problems = []
        missing = sorted(self.required - given)
        unknown = sorted(given - self.fields)
        if missing:
            problems.append(f"missing required field(s) {', '.join(missing)}")
        if unknown:
            problems.append(f"unknown field(s) {', '.join(unknown)}")
        return problems


catalog: dict[str, EventType] = {}


def declare(
    name: str,
    *,
    description: str,
    required: Iterable[str] = (),
    optional: Iterable[str] = (),
    level: str = "info",
    schema_version: int = 1,
    persist: bool = True,
    publish: bool = False,
    audit: bool = False,
    metrics: Iterable[Metric] = (),
    retention_days: int | None = None,
) -> EventType:
    """Declare an event type (idempotent for an identical declaration; a conflicting one is an error)."""
    if level not in LEVELS:
        raise ValueError(f"event {name!r}: level must be one of {', '.join(LEVELS)}")
    event_type = EventType(
        name=name,
        description=description,
        level=level,
        schema_version=schema_version,
        persist=persist,
        publish=publish,
        audit=audit,
        required=frozenset(required),
        optional=frozenset(optional),
        metrics=tuple(metrics),
        retention_days=retention_days,
    )
    existing = catalog.get(name)
    if existing is not None and existing != event_type:
        raise ValueError(f"event {name!r} is declared twice with different policies")
    catalog[name] = event_type
    return event_type


def lookup(name: str) -> EventType:
    try:
        return catalog[name]
    except KeyError:
        raise UndeclaredEvent(
            f"event type {name!r} is not declared; declare it with console.events.declare()"
        ) from None
