"""The dashboard panel: each projection's mode, lag and state, and rebuilds under way."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from console.eventsourcing import projections
from console.eventsourcing.models import RebuildRun


def projections_panel(request: HttpRequest) -> dict[str, Any]:
    return {
        "statuses": [projections.ProjectionStatus.of(projector) for projector in projections.registered()],
        "rebuilding": RebuildRun.objects.unfinished().count(),
    }
