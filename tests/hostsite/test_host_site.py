"""A new user's site: the wheel, a fresh startproject site with its own user model, and the README's lines."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.hostsite.conftest import signed_in
from tests.hostsite.site import HostSite

pytestmark = pytest.mark.browser

# Every page of the console a site gets from include("console.urls"), without the demo app.
PAGES = [
    "/ops/",
    "/ops/jobs/",
    "/ops/jobs/runs/",
    "/ops/jobs/check/",
    "/ops/events/",
    "/ops/events/catalog/",
    "/ops/events/subscriptions/",
    "/ops/webhooks/",
    "/ops/webhooks/new/",
    "/ops/messages/",
    "/ops/messages/previews/",
    "/ops/contacts/",
    "/ops/streams/",
    "/ops/projections/",
    "/ops/metrics",
]


def test_the_site_checks_clean(inline_site: HostSite) -> None:
    result = inline_site.manage("check")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced).", result.stdout + result.stderr


def test_every_console_page_answers_under_ops(inline_site: HostSite, browser: Any) -> None:
    page = signed_in(browser, inline_site)
    for path in PAGES:
        response = page.request.get(path)
        assert response.status == 200, f"{path}: {response.status} {response.text()[:500]}"
    # No demo app, no demo pages; and the console mounted no admin or sign-in views of its own.
    for path in ("/ops/read-models/accounts/", "/ops/admin/", "/ops/accounts/login/"):
        assert page.request.get(path).status == 404, path
    anonymous = browser.new_context(base_url=inline_site.url)
    response = anonymous.request.get("/ops/jobs/", max_redirects=0)
    assert response.status == 302 and response.headers["location"] == "/admin/login/?next=/ops/jobs/"
    anonymous.close()


def test_a_job_runs_inline_with_the_default_backend(inline_site: HostSite, browser: Any) -> None:
    page = signed_in(browser, inline_site)
    expect(page.locator(".banner")).to_contain_text("Tasks run inline")
    page.goto("/ops/jobs/check/")
    page.get_by_role("button", name="Run check").click()
    page.wait_for_url("**/ops/jobs/runs/*/")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    expect(page.get_by_test_id("output")).to_contain_text("System check identified no issues")


def test_a_job_runs_on_the_database_backends_worker(worker_site: HostSite, browser: Any) -> None:
    page = signed_in(browser, worker_site)
    page.get_by_role("link", name="Jobs", exact=True).click()
    page.get_by_role("searchbox", name="Search commands").fill("check")
    page.get_by_role("link", name="check", exact=True).click()
    page.wait_for_url("**/ops/jobs/check/")
    page.get_by_label("Reason").fill("host site tier")
    page.get_by_role("button", name="Run check").click()
    page.wait_for_url("**/ops/jobs/runs/*/")
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded", timeout=60_000)
    expect(page.get_by_test_id("output")).to_contain_text("System check identified no issues")
    expect(page.locator(".banner")).to_have_count(0)  # not inline: the worker ran it

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url("**/ops/events/")
    expect(page.locator("#table-region")).to_contain_text("job.finished")
    for name, heading in (("Messages", "Messages"), ("Streams", "Streams"), ("Projections", "Projections")):
        page.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
    page.get_by_role("link", name="Dashboard", exact=True).click()
    expect(page.get_by_test_id("worker-status")).to_contain_text("running", timeout=30_000)
    expect(page.get_by_test_id("tick-status")).to_contain_text("running", timeout=30_000)
