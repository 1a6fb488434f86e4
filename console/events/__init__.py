"""The event log: declared event types, one emit call, and the append-only ``Event`` table."""

from __future__ import annotations

from console.events.catalog import EventType, Metric, declare
from console.events.pipeline import batch, emit

__all__ = ["EventType", "Metric", "batch", "declare", "emit"]
