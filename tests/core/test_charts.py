"""Charts: server-rendered SVG bars from the rollups, each a link to the table filtered to its interval."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console.core.charts import RANGES, Chart, Series, chart_range, per_bar
from console.events import rollups
from console.events.models import Event
from console.events.services import webhook_create
from console.events.subscriptions import catch_up
from console.jobs.models import JobRun, Status

pytestmark = pytest.mark.django_db


def failed_run(user: User, *, finished: datetime) -> JobRun:
    run = JobRun.objects.create(
        command="demo_report",
        argv=[],
        argv_display="Q1",
        requested_by=user,
        status=Status.FAILED,
        queued_at=finished - timedelta(seconds=5),
        finished_at=finished,
    )
    Event.objects.create(
        type="job.finished",
        data={"run_id": run.pk, "command": "demo_report", "status": "failed", "exit_code": 1, "seconds": 4.0},
        recorded_at=finished,
    )
    return run


def bar_links(page: str, status: str) -> list[str]:
    return [
        html.unescape(href) for href in re.findall(r'<a href="([^"]*status=' + status + r'[^"]*)" aria-label', page)
    ]


def test_the_dashboard_draws_a_failed_run_as_a_bar_that_opens_the_runs_of_its_minute(
    client: Client, operator: User
) -> None:
    run = failed_run(operator, finished=timezone.now())
    earlier = failed_run(operator, finished=timezone.now() - timedelta(minutes=10))
    catch_up(rollups.NAME)
    client.force_login(operator)
    page = client.get("/").content.decode()
    assert 'data-testid="chart-jobs-runs"' in page and "<svg" in page and "<desc" in page
    links = bar_links(page, "failed")
    assert len(links) == 2
    listing = client.get(links[-1]).content.decode()
    assert f'href="/jobs/runs/{run.pk}/"' in listing and f'href="/jobs/runs/{earlier.pk}/"' not in listing


def test_the_chart_region_answers_htmx_with_itself_for_each_range(client: Client, staff: User) -> None:
    failed_run(staff, finished=timezone.now() - timedelta(hours=3))
    catch_up(rollups.NAME)
    client.force_login(staff)
    for slug in RANGES:
        response = client.get(reverse("core:charts", args=["jobs"]), {"range": slug}, headers={"HX-Request": "true"})
        body = response.content.decode()
        assert response.status_code == 200 and body.lstrip().startswith('<section id="charts-jobs"')
        assert "<html" not in body and f"range={slug}" in body
        assert ("status=failed" in body) == (slug != "1h")
    # An unknown range is the default one; an unknown chart region is a 404, not a 500.
    assert client.get(reverse("core:charts", args=["jobs"]), {"range": "2y"}).status_code == 200
    assert client.get(reverse("core:charts", args=["nope"])).status_code == 404


def test_the_chart_region_is_for_staff_only(client: Client, outsider: User) -> None:
    assert client.get(reverse("core:charts", args=["dashboard"])).status_code == 302
    client.force_login(outsider)
    assert client.get(reverse("core:charts", args=["dashboard"])).status_code == 403


def test_the_jobs_page_lists_runs_and_duration_percentiles_per_command(client: Client, staff: User) -> None:
    failed_run(staff, finished=timezone.now())
    catch_up(rollups.NAME)
    client.force_login(staff)
    page = client.get("/jobs/").content.decode()
    assert 'data-testid="chart-jobs-runs"' in page
    assert "<td>demo_report</td>" in page and "95th percentile" in page


def test_the_messages_events_and_webhook_pages_have_their_charts(client: Client, staff: User) -> None:
    now = timezone.now()
    Event.objects.create(
        type="message.failed",
        data={"message_id": 1, "message_type": "welcome", "channel": "email", "failure_class": "recipient"},
        recorded_at=now,
    )
    endpoint = webhook_create(actor=staff, name="hook", url="https://example.com/hook", event_types=[])
    Event.objects.create(
        type="webhook.attempted",
        data={"endpoint_id": endpoint.pk, "delivery_id": 1, "ok": False, "ms": 80},
        recorded_at=now,
    )
    catch_up(rollups.NAME)
    client.force_login(staff)
    messages = client.get("/messages/").content.decode()
    assert 'data-testid="chart-messages-outcomes"' in messages and "status=failed" in messages
    assert "type=welcome" in html.unescape(messages)
    events = client.get("/events/").content.decode()
    assert 'data-testid="chart-events-by-type"' in events and "type=message.failed" in html.unescape(events)
    webhook = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert 'data-testid="chart-webhook-attempts"' in webhook and "Median latency" in webhook
    assert f"stream=webhook-{endpoint.pk}" in html.unescape(webhook)


def test_bars_stack_series_and_sum_buckets_into_wider_bars() -> None:
    week = chart_range("7d")
    starts = week.starts(datetime(2026, 3, 8, 13, 30, tzinfo=UTC))
    assert len(starts) == 28 and starts[-1] == datetime(2026, 3, 8, 12, tzinfo=UTC)
    hourly = {starts[-1] + timedelta(hours=h): 1.0 for h in range(6)}
    assert per_bar(hourly, starts, week.bar)[-1] == 6
    chart = Chart("t", "T", "D", "runs", starts[:2], week.bar, [Series("a", [1, 2]), Series("b", [3, 0])])
    shapes = chart.shapes
    assert [(s.series, s.height) for s in shapes] == [(0, 37.5), (1, 112.5), (0, 75.0)]
    assert chart.total == "6" and [row.total for row in chart.rows] == ["4", "2"]


def test_bars_and_rows_written_in_python_escape_labels_and_links() -> None:
    # Series labels come from the log (command names, message classes, event types): never markup.
    starts = chart_range("1h").starts(datetime(2026, 3, 8, 13, 30, tzinfo=UTC))[:1]
    hostile = '<img src=x onerror="alert(1)">'
    chart = Chart("t", "T", "D", "runs", starts, 60, [Series(hostile, [2], lambda start, end: f'/x?q="{hostile}')])
    bars, rows = str(chart.bars_html), str(chart.rows_html)
    for markup in (bars, rows):
        assert "<img" not in markup and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in markup
    assert 'href="/x?q=&quot;&lt;img' in bars and 'href="/x?q=&quot;&lt;img' in rows
