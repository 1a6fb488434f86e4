"""Every console page runs under the site's Content Security Policy: no inline script, no eval, no inline style."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from playwright.sync_api import expect

from console.comms.classes import lookup
from console.comms.models import Message
from console.comms.sending import send
from console.jobs.models import JobRun, OutputChunk, Status

pytestmark = pytest.mark.browser


def test_a_polling_run_page_works_under_the_policy(signed_in_page: Any, admin_user: User) -> None:
    page = signed_in_page
    run = JobRun.objects.create(
        command="demo_report", argv=[], argv_display="", requested_by=admin_user, status=Status.RUNNING
    )
    response = page.goto(f"/jobs/runs/{run.pk}/")
    policy = response.headers["content-security-policy"]
    assert "script-src 'self' 'nonce-" in policy and "unsafe" not in policy

    OutputChunk.objects.create(run=run, seq=1, text="first line", lines=1)
    JobRun.objects.filter(pk=run.pk).update(last_seq=1)
    expect(page.get_by_test_id("output")).to_contain_text("first line")
    JobRun.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, exit_code=0)
    expect(page.get_by_test_id("run-status")).to_have_text("succeeded")
    expect(page.locator("#output-poll")).not_to_have_attribute("hx-trigger", "every 1s")


def test_the_violation_check_sees_what_the_policy_blocks(signed_in_page: Any, csp_violations: list[str]) -> None:
    page = signed_in_page
    page.goto("/")
    page.evaluate("() => { document.querySelector('main').innerHTML += '<p style=\"color: red\">styled</p>'; }")
    page.wait_for_timeout(300)
    assert any("style-src" in text for text in csp_violations), csp_violations
    csp_violations.clear()


PAGES = [
    "/",
    "/jobs/",
    "/jobs/demo_report/",
    "/jobs/runs/",
    "/messages/",
    "/messages/previews/",
    "/contacts/",
    "/events/",
    "/events/catalog/",
    "/events/subscriptions/",
    "/webhooks/",
    "/webhooks/new/",
    "/streams/",
    "/projections/",
    "/read-models/accounts/",
    "/read-models/activity/",
    "/admin/",
]
# One detail page of each kind, reached through its list's own first link.
DETAILS = [
    ("/messages/", "#table-region tbody a[href^='/messages/']"),
    ("/events/", "#table-region tbody a[href^='/events/']"),
    ("/streams/", "main a[href^='/streams/']"),
    ("/read-models/accounts/", "main tbody a[href^='/read-models/accounts/']"),
]


def test_every_console_page_renders_under_the_policy(signed_in_page: Any) -> None:
    call_command("console_demo", "--events", "40", "--messages", "12", verbosity=0)
    page = signed_in_page
    for path in PAGES:
        response = page.goto(path)
        assert response.status == 200, path
        assert "content-security-policy" in response.headers, path
    for path, link in DETAILS:
        page.goto(path)
        href = page.locator(link).first.get_attribute("href")
        assert page.goto(href).status == 200, href


def test_an_html_body_keeps_its_inline_styles_in_its_sandboxed_frame(signed_in_page: Any) -> None:
    cls = lookup("order_confirmation")
    assert cls is not None
    message = send(cls.sample(), to="ada@example.com")
    html = '<p style="color: rgb(1, 2, 3)">Styled</p><script>document.title = "ran"</script>'
    Message.objects.filter(pk=message.pk).update(html_body=html)
    page = signed_in_page
    page.goto(f"/messages/{message.pk}/")
    body = page.frame_locator("iframe.html-body").locator("p")
    expect(body).to_have_text("Styled")
    expect(body).to_have_css("color", "rgb(1, 2, 3)")
    assert page.frame_locator("iframe.html-body").locator("html").evaluate("() => document.title") != "ran"
