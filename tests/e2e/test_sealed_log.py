"""Someone on call opens the sealed log from the audit log in Chromium and asks for a check: it runs in the
background (a real worker), its page shows the events checked of the total and the outcome, and the sealed
log's page then shows the latest check. After an event is deleted by hand, the next check names it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from playwright.sync_api import expect

from console.events.models import Event
from console.events.pipeline import emit
from tests.conftest import Worker, serious_accessibility_violations
from tests.events.conftest import PING, seal_all

pytestmark = pytest.mark.browser


def _verify_and_watch(page: Any) -> Any:
    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url("**/operations/*/")
    operation = page.get_by_test_id("operation")
    expect(operation).to_contain_text("Verify the sealed log")
    operation.and_(page.locator("[data-state='succeeded']")).wait_for(timeout=60_000)
    done = page.get_by_test_id("operation-done").inner_text().split()
    assert done[1:] == ["of", done[0], "done"] and int(done[0]) >= 20, done
    assert operation.get_attribute("hx-trigger") is None  # polling stopped
    return page.get_by_test_id("operation-outcome")


def test_staff_verify_the_sealed_log_in_the_background_and_see_what_it_found(
    worker: Worker, signed_in_page: Any
) -> None:
    page = signed_in_page
    pings = [emit(PING, n=n) for n in range(20)]
    seal_all()

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url("**/events/")
    page.get_by_role("link", name="Sealed log").click()
    page.wait_for_url("**/events/sealed/")
    page.get_by_role("heading", name="Sealed log").wait_for()
    expect(page.get_by_text("The log has not been checked yet.")).to_be_visible()
    assert serious_accessibility_violations(page) == []

    expect(_verify_and_watch(page)).to_contain_text("The log is intact")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("link", name="Back to where it was started").click()
    page.wait_for_url("**/events/sealed/")
    last_check = page.get_by_test_id("last-check")
    expect(last_check).to_contain_text("intact")
    expect(last_check).to_contain_text("by admin.")
    expect(page.get_by_test_id("checked-head")).to_have_text(re.compile(r"^[0-9a-f]{64}$"))
    assert serious_accessibility_violations(page) == []

    target = pings[7]
    assert target is not None
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Event._meta.db_table} WHERE position = %s", [target.position])
    expect(_verify_and_watch(page)).to_contain_text(f"event #{target.position} was deleted")
    page.get_by_role("link", name="Back to where it was started").click()
    page.wait_for_url("**/events/sealed/")
    expect(page.get_by_test_id("last-check")).to_contain_text("tampered")
    expect(page.get_by_test_id("last-check")).to_contain_text(f"event #{target.position} was deleted")
    assert serious_accessibility_violations(page) == []
    worker.stop()
