"""Someone on call opens the sealed log from the audit log in Chromium, verifies it, and sees it intact."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from console.events.pipeline import emit
from tests.conftest import serious_accessibility_violations
from tests.events.conftest import PING, seal_all

pytestmark = pytest.mark.browser


def test_staff_verify_the_sealed_log_and_see_it_intact(signed_in_page: Any) -> None:
    page = signed_in_page
    for n in range(5):
        emit(PING, n=n)
    seal_all()

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url("**/events/")
    page.get_by_role("link", name="Sealed log").click()
    page.wait_for_url("**/events/sealed/")
    page.get_by_role("heading", name="Sealed log").wait_for()
    expect(page.get_by_text("The log has not been checked yet.")).to_be_visible()
    assert serious_accessibility_violations(page) == []

    page.get_by_role("button", name="Verify now").click()
    page.wait_for_url("**/events/sealed/")
    expect(page.get_by_test_id("last-check")).to_contain_text("intact")
    assert serious_accessibility_violations(page) == []
