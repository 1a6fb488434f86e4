"""The eventsourcing app's settings: ``CONSOLE_EVENTSOURCING`` in the site's settings, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@dataclass(frozen=True)
class EventsourcingSettings:
    # Take a snapshot every N events of a stream; per aggregate stream type, else the aggregate's own default.
    SNAPSHOT_EVERY: dict[str, int] = field(default_factory=dict)
    # Events a rebuild replays per transaction (one bulk upsert per read model per batch). A batch's upsert
    # costs about as much per row as the rows it replays touch, so larger batches amortize hot keys; at
    # 10,000 a batch still commits (and reports progress) several times a second.
    REBUILD_BATCH: int = 10_000
    # A running rebuild whose heartbeat is older than this is handed to a new task by the tick.
    REBUILD_STALE_SECONDS: float = 120.0


def es_settings() -> EventsourcingSettings:
    raw: dict[str, Any] = dict(getattr(settings, "CONSOLE_EVENTSOURCING", {}) or {})
    known = set(EventsourcingSettings.__dataclass_fields__)
    return EventsourcingSettings(**{key: value for key, value in raw.items() if key in known})


@register()
def check_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "CONSOLE_EVENTSOURCING", {}) or {}
    if not isinstance(raw, dict):
        return [Error("CONSOLE_EVENTSOURCING must be a dict.", id="console.eventsourcing.E001")]
    errors: list[CheckMessage] = []
    unknown = sorted(set(raw) - set(EventsourcingSettings.__dataclass_fields__))
    if unknown:
        errors.append(
            Error(f"CONSOLE_EVENTSOURCING has unknown keys: {', '.join(unknown)}.", id="console.eventsourcing.E001")
        )
    conf = es_settings()
    every = conf.SNAPSHOT_EVERY
    if not isinstance(every, dict) or not all(isinstance(n, int) and n >= 0 for n in every.values()):
        errors.append(
            Error(
                "CONSOLE_EVENTSOURCING['SNAPSHOT_EVERY'] maps stream types to whole numbers (0 = never).",
                id="console.eventsourcing.E002",
            )
        )
    if not isinstance(conf.REBUILD_BATCH, int) or conf.REBUILD_BATCH < 1:
        errors.append(
            Error("CONSOLE_EVENTSOURCING['REBUILD_BATCH'] must be a positive integer.", id="console.eventsourcing.E003")
        )
    if not isinstance(conf.REBUILD_STALE_SECONDS, int | float) or conf.REBUILD_STALE_SECONDS <= 0:
        errors.append(
            Error(
                "CONSOLE_EVENTSOURCING['REBUILD_STALE_SECONDS'] must be a positive number.",
                id="console.eventsourcing.E004",
            )
        )
    return errors
