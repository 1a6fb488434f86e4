"""The jobs app's dashboard panel (what runs now, what waits for a worker or for approval, what failed in
the last day) and its charts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count, Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from console.core.charts import Chart, ChartRange, filtered
from console.events.rollups import Part, over_time, range_totals
from console.jobs.declarations import FAILED_BY_COMMAND, RUNS, RUNS_BY_COMMAND
from console.jobs.models import ACTIVE, LIVE, JobRun, Status

# The commands listed under the runs chart, busiest first.
COMMANDS_SHOWN = 20

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


def _runs_chart(chart_range: ChartRange) -> Chart:
    runs = reverse("jobs:runs")
    parts = [
        Part("succeeded", "succeeded", "ok", filtered(runs, status="succeeded")),
        Part("failed", "failed", "bad", filtered(runs, status="failed")),
        Part("lost", "lost", "warn", filtered(runs, status="lost")),
        Part("cancelled", "cancelled", "", filtered(runs, status="cancelled")),
    ]
    starts, series = over_time(RUNS, chart_range, parts)
    return Chart(
        slug="jobs-runs",
        title="Job runs by outcome",
        description="Jobs that ended, stacked by how they ended; each bar links to those runs.",
        unit="runs",
        starts=starts,
        bar=chart_range.bar,
        series=series,
    )


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


def dashboard_charts(chart_range: ChartRange) -> list[Chart]:
    return [_runs_chart(chart_range)]


def page_charts(chart_range: ChartRange, of: int | None) -> list[Chart]:
    """Runs by outcome, with runs, failures and duration percentiles per command under it."""
    chart = _runs_chart(chart_range)
    runs = range_totals(RUNS_BY_COMMAND, chart_range)
    failed = range_totals(FAILED_BY_COMMAND, chart_range)
    chart.notes_header = ["Command", "Runs", "Failed or lost", "Median", "95th percentile"]
    chart.notes = [
        (
            command,
            f"{runs[command].count:,}",
            f"{failed[command].count if command in failed else 0:,}",
            _seconds(runs[command].percentile(0.5)),
            _seconds(runs[command].percentile(0.95)),
        )
        for command in sorted(runs, key=lambda command: (-runs[command].count, command))[:COMMANDS_SHOWN]
    ]
    return [chart]
