"""Event types the eventsourcing app emits about itself (domain event types are declared where they live)."""

from __future__ import annotations

from console.events.catalog import declare

REBUILD_REQUESTED = declare(
    "projection.rebuild_requested",
    description="Someone started a rebuild of a projection.",
    required={"projection", "run", "as_of", "swap"},
    audit=True,
)
REBUILD_CANCELLED = declare(
    "projection.rebuild_cancelled",
    description="Someone asked a running rebuild to stop.",
    required={"projection", "run"},
    audit=True,
)
REBUILD_RESUMED = declare(
    "projection.rebuild_resumed",
    description="Someone resumed a cancelled or failed rebuild from where it stopped.",
    required={"projection", "run"},
    audit=True,
)
REBUILD_PROMOTED = declare(
    "projection.rebuild_promoted",
    description="Someone made a rebuilt copy the live read model.",
    required={"projection", "run"},
    audit=True,
)
REBUILD_FINISHED = declare(
    "projection.rebuild_finished",
    description="A rebuild finished (swapped in, or left as a copy beside the live read model).",
    required={"projection", "run", "status", "events"},
    optional={"skipped_unknown"},
)
REBUILD_FAILED = declare(
    "projection.rebuild_failed",
    description="A rebuild stopped on an error; it can be resumed.",
    required={"projection", "run", "error"},
    level="warning",
)
PAUSED = declare(
    "projection.paused",
    description="Someone paused an asynchronous projection.",
    required={"projection"},
    audit=True,
)
RESUMED = declare(
    "projection.resumed",
    description="Someone resumed an asynchronous projection.",
    required={"projection"},
    audit=True,
)
