"""Run a command from its generated form in Chromium and watch it: live output, final status, stop."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from playwright.sync_api import expect

from console.jobs.models import JobRun, Status
from tests.conftest import PASSWORD, Worker

pytestmark = pytest.mark.browser
# A new worker's first run waits for the worker's start and its warm runner's: slow on a busy machine.
FIRST_OUTPUT_MS = 60_000


def test_a_run_shows_output_while_running_then_its_final_status(signed_in_page: Any, worker: Worker) -> None:
    page = signed_in_page
    page.goto("/jobs/")
    page.get_by_role("searchbox", name="Search commands").fill("demo_imp")
    page.get_by_role("link", name="demo_import").click()
    # Loaded, not only parsed: input typed before htmx binds the form would never update the preview.
    page.wait_for_url("**/jobs/demo_import/")
    page.locator("#id_batches").fill("4")
    page.locator("#id_seconds").fill("8")
    page.locator("#id_source").select_option("billing")
    preview = page.get_by_test_id("cli-preview")
    expect(preview).to_have_text("python manage.py demo_import --batches=4 --seconds=8.0 --source=billing")
    page.get_by_label("Reason").fill("browser test")
    page.get_by_role("button", name="Run demo_import").click()
    page.wait_for_url("**/jobs/runs/*/")

    output = page.get_by_test_id("output")
    status = page.get_by_test_id("run-status")
    expect(output).to_contain_text("batch 1/4 imported", timeout=FIRST_OUTPUT_MS)
    # The first lines arrived while the command was still running.
    assert status.inner_text() == "running"
    assert "batch 4/4 imported" not in output.inner_text()
    assert "\x1b" not in output.inner_text()

    expect(status).to_have_text("succeeded", timeout=30_000)
    expect(output).to_contain_text("Imported 400 records from billing")
    expect(page.locator("#status")).to_have_text(f"Run #{JobRun.objects.get().pk} demo_import: succeeded.")
    expect(page.get_by_role("button", name="Re-run with the same arguments")).to_be_visible()


def test_stopping_a_long_run_ends_cancelled(signed_in_page: Any, worker: Worker) -> None:
    page = signed_in_page
    page.goto("/jobs/demo_import/")
    page.locator("#id_seconds").fill("120")
    page.get_by_role("button", name="Run demo_import").click()
    page.wait_for_url("**/jobs/runs/*/")
    expect(page.get_by_test_id("output")).to_contain_text("Importing 12 batches", timeout=FIRST_OUTPUT_MS)
    page.get_by_role("button", name="Stop").click()
    expect(page.get_by_test_id("run-status")).to_have_text("cancelled", timeout=30_000)
    expect(page.locator("#status")).to_contain_text("cancelled")
    run = JobRun.objects.get()
    assert run.status == Status.CANCELLED and run.stop_requested_by is not None


def test_choosing_a_subcommand_shows_only_its_arguments(signed_in_page: Any) -> None:
    page = signed_in_page
    page.goto("/jobs/demo_report/")
    schedule = page.locator('fieldset[data-subcommand="schedule"]')
    build = page.locator('fieldset[data-subcommand="build"]')
    expect(build).to_be_visible()
    expect(schedule).to_be_hidden()
    page.get_by_label("Subcommand").select_option("schedule")
    expect(schedule).to_be_visible()
    expect(build).to_be_hidden()
    page.get_by_label("name").fill("Nightly")
    page.get_by_label("cron").fill("0 3 * * *")
    expect(page.get_by_test_id("cli-preview")).to_have_text("python manage.py demo_report Nightly schedule '0 3 * * *'")


def test_a_run_page_whose_session_expires_while_polling_goes_to_the_login_page(
    signed_in_page: Any, worker: Worker
) -> None:
    page = signed_in_page
    page.goto("/jobs/demo_import/")
    page.locator("#id_batches").fill("3")
    page.locator("#id_seconds").fill("6")
    page.get_by_role("button", name="Run demo_import").click()
    page.wait_for_url("**/jobs/runs/*/")
    run = JobRun.objects.get()
    expect(page.get_by_test_id("output")).to_contain_text("batch 1/3 imported", timeout=FIRST_OUTPUT_MS)

    Session.objects.all().delete()

    # The next poll lands the whole page on the login form, not the form inside the output panel.
    page.wait_for_url(f"**/accounts/login/?next=/jobs/runs/{run.pk}/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("output")).to_have_count(0)
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**/jobs/runs/{run.pk}/")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=30_000)


def test_a_hidden_tab_stops_polling_until_it_is_shown_again(signed_in_page: Any, admin_user: User) -> None:
    page = signed_in_page
    run = JobRun.objects.create(
        command="demo_report", argv=[], argv_display="", requested_by=admin_user, status=Status.RUNNING
    )
    polls: list[str] = []
    page.on("request", lambda request: polls.append(request.url) if "/output?" in request.url else None)
    page.goto(f"/jobs/runs/{run.pk}/")
    with page.expect_request(lambda request: "/output?" in request.url):
        pass

    page.evaluate("() => Object.defineProperty(document, 'visibilityState', {value: 'hidden', configurable: true})")
    page.wait_for_timeout(500)  # a poll sent just before may still be on its way
    while_hidden = len(polls)
    page.wait_for_timeout(1500)
    assert len(polls) == while_hidden

    page.evaluate("() => Object.defineProperty(document, 'visibilityState', {value: 'visible', configurable: true})")
    with page.expect_request(lambda request: "/output?" in request.url):
        pass
