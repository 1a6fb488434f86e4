"""The jobs app's dashboard panel: what runs now, what waits, what failed in the last day."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest
from django.utils import timezone

from console.jobs.models import ACTIVE, LIVE, JobRun, Status


def dashboard_panel(request: HttpRequest) -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    counts = JobRun.objects.filter(Q(status__in=ACTIVE) | Q(finished_at__gte=since)).aggregate(
        live=Count("pk", filter=Q(status__in=LIVE)),
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        failed=Count("pk", filter=Q(status__in=[Status.FAILED, Status.LOST], finished_at__gte=since)),
    )
    return counts
