"""The events app's settings: ``CONSOLE_EVENTS`` in the site's settings, with defaults, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

READERS = ("xid", "table_lock")


@dataclass(frozen=True)
class EventsSettings:
    # How the gapless reader finds commit order on PostgreSQL (SQLite serializes writers anyway).
    READER: str = "xid"
    # Bearer tokens for machine clients; staff sessions are always accepted.
    METRICS_TOKEN: str = ""
    FEED_TOKEN: str = ""
    FEED_LIMIT: int = 500
    # prometheus_client multiprocess directory; empty means <VAR_DIR>/prometheus.
    METRICS_DIR: str = ""
    # Subscriptions: backoff after a failing event, doubled per failure up to the cap.
    RETRY_BASE_SECONDS: float = 2.0
    RETRY_MAX_SECONDS: float = 3600.0
    # Webhooks.
    WEBHOOK_TIMEOUT_SECONDS: float = 10.0
    WEBHOOK_MAX_ATTEMPTS: int = 12
    WEBHOOK_RETRY_BASE_SECONDS: float = 30.0
    WEBHOOK_RETRY_MAX_SECONDS: float = 6 * 3600.0
    WEBHOOK_DISABLE_AFTER_FAILURES: int = 50
    WEBHOOK_ALLOW_PRIVATE: bool = False
    # Retention: days per event type, overriding the declaration; audit types are kept unless listed here.
    RETENTION_DAYS: dict[str, int] = field(default_factory=dict)
    RETENTION_BATCH: int = 5000
    # Free-text search in the audit log looks at this many newest events at most.
    SEARCH_WINDOW: int = 50_000


def events_settings() -> EventsSettings:
    raw: dict[str, Any] = dict(getattr(settings, "CONSOLE_EVENTS", {}) or {})
    known = set(EventsSettings.__dataclass_fields__)
    return EventsSettings(**{key: value for key, value in raw.items() if key in known})


@register()
def check_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "CONSOLE_EVENTS", {}) or {}
    errors: list[CheckMessage] = []
    if not isinstance(raw, dict):
        return [Error("CONSOLE_EVENTS must be a dict.", id="console.events.E001")]
    unknown = sorted(set(raw) - set(EventsSettings.__dataclass_fields__))
    if unknown:
        errors.append(Error(f"CONSOLE_EVENTS has unknown keys: {', '.join(unknown)}.", id="console.events.E001"))
    conf = events_settings()
    if conf.READER not in READERS:
        errors.append(Error(f"CONSOLE_EVENTS['READER'] must be one of {', '.join(READERS)}.", id="console.events.E002"))
    for key in ("FEED_LIMIT", "WEBHOOK_MAX_ATTEMPTS", "WEBHOOK_DISABLE_AFTER_FAILURES", "RETENTION_BATCH"):
        value = getattr(conf, key)
        if not isinstance(value, int) or value < 1:
            errors.append(Error(f"CONSOLE_EVENTS['{key}'] must be a positive integer.", id="console.events.E003"))
    if not isinstance(conf.RETENTION_DAYS, dict) or not all(
        isinstance(days, int) and days >= 0 for days in conf.RETENTION_DAYS.values()
    ):
        errors.append(
            Error("CONSOLE_EVENTS['RETENTION_DAYS'] maps event types to whole days.", id="console.events.E004")
        )
    return errors


@register()
def check_metrics(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    from console.events.catalog import catalog
    from console.events.metrics import multiprocess_active

    messages: list[CheckMessage] = []
    if not multiprocess_active():
        messages.append(
            Warning(
                "prometheus_client was imported before the events app set PROMETHEUS_MULTIPROC_DIR: "
                "/metrics only shows this process's counts.",
                hint="Set PROMETHEUS_MULTIPROC_DIR in the environment of every web and worker process.",
                id="console.events.W001",
            )
        )
    for event_type in catalog.values():
        for metric in event_type.metrics:
            unbounded = [label for label in metric.labels if label not in metric.allowed]
            if unbounded:
                messages.append(
                    Warning(
                        f"Metric {metric.name} of event {event_type.name} has labels without an allowed set: "
                        f"{', '.join(unbounded)}.",
                        hint="List the allowed values so a stray id cannot create unbounded series.",
                        id="console.events.W002",
                    )
                )
    return messages
