"""The eventsourcing app's settings: ``CONSOLE_EVENTSOURCING`` in the site's settings, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, register

from console.core.conf import POSITIVE, AppSettings


@dataclass(frozen=True)
class EventsourcingSettings(AppSettings):
    SETTING = "CONSOLE_EVENTSOURCING"
    CHECK_ID = "console.eventsourcing"

    # Take a snapshot every N events of a stream; per aggregate stream type, else the aggregate's own default.
    snapshot_every: dict[str, int] = field(default_factory=dict)
    # Events a rebuild replays per transaction (one bulk upsert per read model per batch). A batch's upsert
    # costs about as much per row as the rows it replays touch, so larger batches amortize hot keys; at
    # 10,000 a batch still commits (and reports progress) several times a second.
    rebuild_batch: int = field(default=10_000, metadata=POSITIVE)
    # A running rebuild whose heartbeat is older than this is handed to a new task by the tick.
    rebuild_stale_seconds: float = field(default=120.0, metadata=POSITIVE)

    def problems(self) -> list[str]:
        if all(every >= 0 for every in self.snapshot_every.values()):
            return []
        return ["SNAPSHOT_EVERY maps stream types to whole numbers of events (0 = never)."]


es_settings = EventsourcingSettings.load


@register()
def check_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return EventsourcingSettings.check()
