"""The dashboard's charts in Chromium: a run that fails shows up while the page polls, and its bar opens the runs;
rebuilding the rollups from the subscribers page."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import expect

from console.core.conf import core_settings
from console.events import rollups
from console.events.models import Event, Grain, Rollup
from console.events.services import webhook_create
from console.events.subscriptions import catch_up
from console.jobs.catalog import lookup
from console.jobs.models import JobRun, Status
from console.jobs.services import job_start
from tests.conftest import Worker, serious_accessibility_violations, wait_for

pytestmark = pytest.mark.browser


def test_a_failing_run_appears_in_the_failures_chart_and_its_bar_opens_the_filtered_runs(
    signed_in_page: Any, admin_user: User, worker: Worker
) -> None:
    page = signed_in_page
    page.goto("/")
    chart = page.get_by_test_id("chart-jobs-runs")
    expect(chart).to_be_visible()
    failed_bars = chart.locator('a[data-testid="bar"][href*="status=failed"]')
    expect(failed_bars).to_have_count(0)
    assert serious_accessibility_violations(page) == []

    run = job_start(actor=admin_user, info=lookup("demo_fail"), tokens=[], reason="chart test")
    wait_for(lambda: JobRun.objects.get(pk=run.pk).status == Status.FAILED, timeout=30)

    # No reload: the chart region polls for itself while the page is visible.
    poll_ms = core_settings().chart_poll_seconds * 1000
    expect(failed_bars).to_have_count(1, timeout=poll_ms + 5_000)
    label = failed_bars.first.get_attribute("aria-label") or ""
    assert label.endswith("1 failed")
    failed_bars.first.click()
    page.wait_for_url("**/jobs/runs/?status=failed&since=*&until=*")
    expect(page.get_by_role("link", name=f"#{run.pk}", exact=True)).to_be_visible()


@pytest.mark.parametrize("path", ["/", "/jobs/", "/messages/", "/events/"])
def test_pages_with_charts_have_no_serious_accessibility_violations(signed_in_page: Any, path: str) -> None:
    page = signed_in_page
    page.goto(path)
    expect(page.locator("section.charts")).to_be_visible()
    page.locator("section.charts details").first.locator("summary").click()
    assert serious_accessibility_violations(page) == []


def test_a_webhook_endpoints_charts_have_no_serious_accessibility_violations(
    signed_in_page: Any, admin_user: User
) -> None:
    endpoint = webhook_create(actor=admin_user, name="Receiver", url="https://example.com/hook", event_types=[])
    page = signed_in_page
    page.goto(f"/webhooks/{endpoint.pk}/")
    expect(page.get_by_test_id("chart-webhook-attempts")).to_be_visible()
    assert serious_accessibility_violations(page) == []


def test_rebuild_rollups_reads_the_log_again_with_progress_and_is_audited(
    signed_in_page: Any, admin_user: User, worker: Worker
) -> None:
    now = timezone.now()
    for n in range(300):
        Event.objects.create(type="auth.logged_in", data={"username": f"u{n}"}, recorded_at=now)
    catch_up(rollups.NAME)
    before = Rollup.objects.filter(series=rollups.EVENTS_BY_TYPE, key="auth.logged_in", grain=Grain.MINUTE).get()
    assert before.count >= 300
    page = signed_in_page
    page.goto("/events/subscriptions/")
    row = page.get_by_test_id(f"subscriber-{rollups.NAME}")
    expect(row).to_contain_text("0 positions")
    assert serious_accessibility_violations(page) == []

    row.get_by_role("button", name="Rebuild rollups").click()
    expect(page.get_by_text("Rollups dropped")).to_be_visible()
    assert serious_accessibility_violations(page) == []
    # The worker reads the log again; the table polls for itself until the subscriber has caught up.
    expect(page.get_by_test_id(f"subscriber-{rollups.NAME}")).to_contain_text("0 positions", timeout=60_000)
    expect(page.get_by_test_id(f"subscriber-{rollups.NAME}").locator("progress")).to_have_count(0)
    rebuilt = Event.objects.get(type="rollups.rebuilt")
    assert rebuilt.actor_id == admin_user.pk and rebuilt.data["buckets"] > 0
    after = wait_for(
        lambda: Rollup.objects.filter(
            series=rollups.EVENTS_BY_TYPE, key="auth.logged_in", grain=Grain.MINUTE, bucket=before.bucket
        ).first(),
        what="the rebuilt bucket",
    )
    assert after.count == before.count and after.pk != before.pk
