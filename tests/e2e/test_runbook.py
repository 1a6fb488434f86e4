"""In Chromium: a destructive command waits for a second user's approval, then runs; a dry run, then the real
run with the same arguments, and the two compared."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from console.jobs.models import JobRun, Status
from tests.conftest import Worker, serious_accessibility_violations, sign_in

pytestmark = pytest.mark.browser


def test_a_destructive_command_waits_for_a_second_user_who_approves_it(
    page: Any, browser: Any, live_server: Any, operator: User, admin_user: User, worker: Worker, settings: Any
) -> None:
    settings.CONSOLE_JOBS = {"APPROVALS": ["destructive"], "CLASSES": {"demo_import": "destructive"}}
    sign_in(page, operator)
    page.goto("/jobs/demo_import/")
    page.locator("#id_batches").fill("2")
    page.locator("#id_seconds").fill("2")
    page.get_by_label("Reason").fill("monthly import")
    page.get_by_label("Type the command name to confirm").fill("demo_import")
    page.get_by_role("button", name="Run demo_import").click()
    page.wait_for_url("**/jobs/runs/*/")
    run = JobRun.objects.get()
    expect(page.get_by_test_id("run-status")).to_have_text("awaiting approval")
    expect(page.get_by_test_id("run-approval")).to_contain_text("Waits for a second staff user")
    expect(page.get_by_role("button", name="Approve and run")).to_have_count(0)
    expect(page.get_by_role("button", name="Withdraw request")).to_be_visible()
    assert serious_accessibility_violations(page) == []

    approver = browser.new_context(base_url=live_server.url)
    other = approver.new_page()
    try:
        sign_in(other, admin_user)
        waiting = other.get_by_test_id("jobs-awaiting")
        expect(waiting).to_have_text("1")
        assert serious_accessibility_violations(other) == []
        other.get_by_role("link", name=f"#{run.pk} demo_import").click()
        other.wait_for_url(f"**/jobs/runs/{run.pk}/")
        assert serious_accessibility_violations(other) == []
        other.get_by_label("Reason").fill("checked the source")
        other.get_by_role("button", name="Approve and run").click()
        expect(other.get_by_role("list", name="Messages")).to_contain_text(f"Run #{run.pk} approved.")
        expect(other.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)
        expect(other.get_by_test_id("run-approval")).to_contain_text("Approved by admin")
        expect(other.get_by_test_id("output")).to_contain_text("Imported 200 records from crm")
    finally:
        approver.close()

    # The requester's page, polling all along, shows the run that was let go.
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.get_by_test_id("run-approval")).to_contain_text("Approved by admin")
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.decided_by == admin_user and run.requested_by == operator


def test_a_dry_run_first_then_the_real_run_with_the_same_arguments(signed_in_page: Any, worker: Worker) -> None:
    page = signed_in_page
    page.goto("/jobs/demo_report/")
    page.get_by_label("name").fill("Quarterly")
    page.get_by_label("--email").fill("ops@example.com")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Dry run first (--dry-run)").click()
    page.wait_for_url("**/jobs/runs/*/")
    dry = JobRun.objects.get()
    assert dry.dry_run_flag == "--dry-run"
    expect(page.get_by_test_id("run-argv")).to_contain_text("--dry-run")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)
    expect(page.get_by_test_id("run-dry-run")).to_contain_text("Yes (--dry-run)")
    assert serious_accessibility_violations(page) == []

    page.get_by_role("button", name="Run for real with the same arguments").click()
    page.wait_for_url(lambda url: url.endswith("/") and f"/jobs/runs/{dry.pk}/" not in url)
    real = JobRun.objects.exclude(pk=dry.pk).get()
    expect(page.get_by_test_id("run-argv")).not_to_contain_text("--dry-run")
    expect(page.get_by_test_id("run-argv")).to_contain_text("--email=ops@example.com")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)
    assert serious_accessibility_violations(page) == []

    page.get_by_test_id("run-dry-run-of").get_by_role("link", name="compare arguments").click()
    page.wait_for_url(f"**/jobs/runs/{real.pk}/compare?with={dry.pk}")
    removed = page.get_by_test_id("compare").locator("tr.removed")
    expect(removed).to_have_count(1)
    expect(removed).to_contain_text("--dry-run")
    assert serious_accessibility_violations(page) == []
    page.go_back()

    page.get_by_test_id("run-dry-run-of").get_by_role("link", name=f"#{dry.pk}").click()
    page.wait_for_url(f"**/jobs/runs/{dry.pk}/")
    expect(page.get_by_test_id("run-dry-run")).to_contain_text(f"run for real as #{real.pk}")
