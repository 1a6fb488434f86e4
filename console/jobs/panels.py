"""The jobs app's dashboard panel: what runs now, what waits (for a worker or for approval), what failed in the
last day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from console.jobs.models import ACTIVE, LIVE, JobRun, Status

AWAITING_SHOWN = 5


def dashboard_panel(request: HttpRequest) -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    counts = JobRun.objects.filter(Q(status__in=ACTIVE) | Q(finished_at__gte=since)).aggregate(
        live=Count("pk", filter=Q(status__in=LIVE)),
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        awaiting=Count("pk", filter=Q(status=Status.AWAITING)),
        failed=Count("pk", filter=Q(status__in=[Status.FAILED, Status.LOST], finished_at__gte=since)),
    )
    # The oldest requests first: they have waited longest. Only those this user may read are named.
    waiting = JobRun.objects.awaiting_approval().visible_to(request.user).select_related("requested_by")
    counts["awaiting_runs"] = list(waiting.order_by("id")[:AWAITING_SHOWN])
    return counts
