"""The dashboard's event log panel (what holds readers back, how far behind each subscriber is), the
charts of the log and of webhook deliveries, and the banner about webhook endpoints the sender switched off."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest
from django.urls import reverse

from console.core.charts import Chart, ChartRange, Series, filtered
from console.events.declarations import WEBHOOK_ATTEMPTED
from console.events.models import Checkpoint, Event, WebhookEndpoint
from console.events.reader import oldest_open_transaction
from console.events.rollups import EVENTS_BY_TYPE, Part, all_over_time, busiest_keys, over_time, range_totals

# Event types drawn on the log's chart, busiest first.
TYPES_SHOWN = 6


def event_log_panel(request: HttpRequest) -> dict[str, Any]:
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    return {
        "vendor": connection.vendor,
        "newest": newest,
        "oldest": oldest_open_transaction(),
        "checkpoints": [(checkpoint, max(newest - checkpoint.position, 0)) for checkpoint in Checkpoint.objects.all()],
    }


def _events_chart(chart_range: ChartRange, *, by_type: bool) -> Chart:
    log = reverse("events:list")
    if by_type:
        keys = busiest_keys(EVENTS_BY_TYPE, chart_range, limit=TYPES_SHOWN)
        parts = [Part(key, key, "", filtered(log, type=key)) for key in keys]
        title, description = "Events by type", f"Events recorded in the log, the {TYPES_SHOWN} busiest types."
        starts, series = over_time(EVENTS_BY_TYPE, chart_range, parts)
    else:
        title, description = "Events recorded", "Every event recorded in the log."
        starts, summed = all_over_time(EVENTS_BY_TYPE, chart_range)
        series = [Series("events", summed, filtered(log))]
    return Chart(
        slug="events-by-type" if by_type else "events",
        title=title,
        description=description,
        unit="events",
        starts=starts,
        bar=chart_range.bar,
        series=series,
    )


def _attempts_chart(chart_range: ChartRange, *, endpoint: int | None) -> Chart:
    log = reverse("events:list")
    stream = {} if endpoint is None else {"stream": WebhookEndpoint.stream_of(endpoint)["stream_id"]}
    series_name = "webhooks.attempts" if endpoint is None else f"webhooks.endpoint.{endpoint}"
    parts = [
        Part("succeeded", "succeeded", "ok", filtered(log, type=WEBHOOK_ATTEMPTED.name, **stream)),
        Part("failed", "failed", "bad", filtered(log, type=WEBHOOK_ATTEMPTED.name, **stream)),
    ]
    starts, series = over_time(series_name, chart_range, parts)
    chart = Chart(
        slug="webhook-attempts",
        title="Webhook delivery attempts",
        description="Attempts to deliver events to " + ("webhook endpoints." if endpoint is None else "this endpoint."),
        unit="attempts",
        starts=starts,
        bar=chart_range.bar,
        series=series,
    )
    if endpoint is not None:
        summed = range_totals(series_name, chart_range)
        chart.notes_header = ["Outcome", "Attempts", "Median latency", "95th percentile"]
        chart.notes = [
            (outcome, f"{bucket.count:,}", _ms(bucket.percentile(0.5)), _ms(bucket.percentile(0.95)))
            for outcome, bucket in sorted(summed.items())
        ]
    return chart


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def dashboard_charts(chart_range: ChartRange) -> list[Chart]:
    return [_events_chart(chart_range, by_type=False), _attempts_chart(chart_range, endpoint=None)]


def log_charts(chart_range: ChartRange, of: int | None) -> list[Chart]:
    return [_events_chart(chart_range, by_type=True)]


def webhook_charts(chart_range: ChartRange, of: int | None) -> list[Chart]:
    """An endpoint's attempts by outcome, with latency percentiles; every endpoint's without ``of``."""
    return [_attempts_chart(chart_range, endpoint=of)]


def disabled_banner(request: HttpRequest) -> list[str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return []
    names = list(
        WebhookEndpoint.objects.filter(active=False, disabled_at__isnull=False).values_list("name", flat=True)[:5]
    )
    if not names:
        return []
    listed = ", ".join(f"“{name}”" for name in names)
    return [f"Webhook endpoint(s) {listed} were disabled after failing: see Webhooks to re-enable them."]
