"""Prometheus metrics derived from declared events, correct across every web and worker process.

prometheus_client's multiprocess mode keeps each process's values in memory-mapped files under one
directory and sums them at scrape time. The mode is chosen once, when prometheus_client is first imported,
from ``PROMETHEUS_MULTIPROC_DIR``: this module sets it before that import unless the environment already
names one, to ``CONSOLE_EVENTS["METRICS_DIR"]`` or, by default, to a directory in the system's temporary one
named after the site's settings module and database, so every web and worker process of one site on one
machine shares it. Child processes inherit the variable, so a worker started by this site writes where the
web process scrapes.
"""

from __future__ import annotations

import getpass
import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.checks import CheckMessage, Warning, register

from console.events.catalog import Metric, catalog
from console.events.conf import events_settings

if TYPE_CHECKING:
    from console.events.pipeline import Emit

OTHER = "other"


def metrics_dir() -> Path:
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or events_settings().metrics_dir
    if configured:
        return Path(configured)
    site = f"{settings.SETTINGS_MODULE}:{settings.DATABASES.get('default', {}).get('NAME', '')}"
    digest = hashlib.sha256(site.encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"django-ops-console-metrics-{getpass.getuser()}-{digest}"


def enable_multiprocess() -> Path:
    """Point prometheus_client at the shared directory; must run before prometheus_client is imported."""
    directory = metrics_dir()
    # prometheus_client writes into the directory but never makes it, even one named by the environment.
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    return directory


def multiprocess_active() -> bool:
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


_instruments: dict[str, Any] = {}
_local_registry: Any = None


def _registry() -> Any:
    """Where instruments register: nowhere in multiprocess mode (files are collected), else one registry."""
    global _local_registry
    if multiprocess_active():
        return None
    if _local_registry is None:
        from prometheus_client import CollectorRegistry

        _local_registry = CollectorRegistry()
    return _local_registry


def _instrument(metric: Metric) -> Any:
    instrument = _instruments.get(metric.name)
    if instrument is None:
        from prometheus_client import Counter, Histogram

        if metric.kind == "counter":
            instrument = Counter(metric.name, metric.description, metric.labels, registry=_registry())
        else:
            instrument = Histogram(
                metric.name, metric.description, metric.labels, buckets=metric.buckets, registry=_registry()
            )
        _instruments[metric.name] = instrument
    return instrument


EVENTS_TOTAL_NAME = "console_events_total"


def _events_total() -> Any:
    instrument = _instruments.get(EVENTS_TOTAL_NAME)
    if instrument is None:
        from prometheus_client import Counter

        instrument = Counter(EVENTS_TOTAL_NAME, "Declared events emitted, by type.", ("type",), registry=_registry())
        _instruments[EVENTS_TOTAL_NAME] = instrument
    return instrument


def label_values(metric: Metric, fields: dict[str, Any]) -> list[str]:
    """Label values from the event's fields; anything outside a label's allowed set becomes ``other``."""
    values = []
    for label in metric.labels:
        raw = fields.get(label)
        value = "" if raw is None else str(raw)
        allowed = metric.allowed.get(label)
        values.append(value if allowed is None or value in allowed else OTHER)
    return values


_type_counters: dict[str, Any] = {}


def _count_type(name: str) -> None:
    # The labelled child is cached: looking it up costs more than the increment itself.
    child = _type_counters.get(name)
    if child is None:
        child = _type_counters[name] = _events_total().labels(name)
    child.inc()


def record(emitted: Emit) -> None:
    fields = emitted.fields
    undeclared = "undeclared event type" in emitted.problems
    _count_type("undeclared" if undeclared else emitted.event_type.name)
    for metric in emitted.event_type.metrics:
        instrument = _instrument(metric)
        if metric.labels:
            instrument = instrument.labels(*label_values(metric, fields))
        if metric.kind == "counter":
            amount = fields.get(metric.value_field, 1) if metric.value_field else 1
            if isinstance(amount, int | float) and amount >= 0:
                instrument.inc(amount)
        else:
            value = fields.get(metric.value_field or "", None)
            if isinstance(value, int | float) and not isinstance(value, bool):
                instrument.observe(value)


def metrics_sink(emitted: Emit, context: Mapping[str, Any]) -> None:
    """Emit sink: count every declared event, and feed the metrics its declaration derives from it."""
    record(emitted)


def exposition() -> tuple[bytes, str]:
    """The Prometheus text exposition of every process's values."""
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    if multiprocess_active():
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # prometheus_client ships it untyped
    else:
        registry = _registry()
    return generate_latest(registry), CONTENT_TYPE_LATEST


@register()
def check_metrics(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
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
