"""Create a schedule from the generated form in Chromium, see its next run, run it now, see the run."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from console.jobs.models import JobRun, Schedule, Status
from tests.conftest import Worker, serious_accessibility_violations

pytestmark = pytest.mark.browser


def test_a_schedule_made_from_the_form_shows_its_next_run_and_runs_now(signed_in_page: Any, worker: Worker) -> None:
    page = signed_in_page
    page.goto("/jobs/")
    page.get_by_role("link", name="Schedules").click()
    page.wait_for_url("**/jobs/schedules/")
    assert serious_accessibility_violations(page) == []
    page.get_by_label("New schedule of").select_option("demo_report")
    page.get_by_role("button", name="New schedule…").click()
    page.wait_for_url("**/jobs/schedules/new/demo_report/")

    page.locator("#id_name").fill("Nightly")
    page.locator("#id_subcommand").select_option("build")
    page.get_by_label("Name").and_(page.locator("#id_schedule-name")).fill("nightly-report")
    page.get_by_label("Cron expression").fill("61 2 * * *")
    page.get_by_label("Time zone").fill("Europe/Paris")
    page.get_by_role("button", name="Save schedule").click()
    # A bad expression is an error next to its field, and nothing was saved.
    expect(page.locator("#id_schedule-cron-error")).to_contain_text("Not a cron expression (Bad minute)")
    assert not Schedule.objects.exists()
    assert serious_accessibility_violations(page) == []

    page.get_by_label("Cron expression").fill("30 2 * * *")
    page.get_by_role("button", name="Save schedule").click()
    page.wait_for_url("**/jobs/schedules/*/")
    schedule = Schedule.objects.get()
    assert schedule.next_run_at is not None
    expect(page.get_by_test_id("schedule-next")).to_have_text(f"{schedule.next_run_at:%Y-%m-%d %H:%M:%S} UTC")
    expect(page.get_by_test_id("schedule-state")).to_have_text("enabled")
    expect(page.get_by_text("No runs yet.")).to_be_visible()
    assert serious_accessibility_violations(page) == []

    page.get_by_role("button", name="Run now").click()
    page.wait_for_url(f"**/jobs/schedules/{schedule.pk}/")
    run = JobRun.objects.get(schedule=schedule)
    history = page.get_by_test_id("schedule-runs")
    expect(history).to_contain_text(f"#{run.pk}")
    expect(history).to_contain_text("run now")
    history.get_by_role("link", name=f"#{run.pk}").click()
    page.wait_for_url(f"**/jobs/runs/{run.pk}/")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.get_by_role("link", name="nightly-report")).to_be_visible()


def test_stop_all_matching_shows_the_count_then_stops_them_in_the_background(
    signed_in_page: Any, admin_user: Any, worker: Worker
) -> None:
    runs = [
        JobRun.objects.create(command="demo_report", requested_by=admin_user, status=Status.QUEUED) for _ in range(3)
    ]
    JobRun.objects.create(command="demo_import", requested_by=admin_user, status=Status.QUEUED)
    page = signed_in_page
    page.goto("/jobs/runs/?command=demo_report")
    page.get_by_role("button", name="Stop all matching").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Stop 3 runs?")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Stop 3 runs").click()
    page.wait_for_url("**/operations/*/")
    expect(page.get_by_test_id("operation")).to_have_attribute("data-state", "succeeded", timeout=30_000)
    assert {run.status for run in JobRun.objects.filter(pk__in=[r.pk for r in runs])} == {Status.CANCELLED}
    assert JobRun.objects.get(command="demo_import").status == Status.QUEUED
