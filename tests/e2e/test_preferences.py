"""Staff change a recipient's preferences in the console; a recipient follows a signed link to turn a category off."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from console.comms import sending
from console.comms.classes import lookup
from console.comms.models import Preference
from console.comms.sending import Recipient, send
from tests.conftest import serious_accessibility_violations

pytestmark = pytest.mark.browser


def test_staff_turn_a_channel_off_for_a_recipient(signed_in_page: Any) -> None:
    page = signed_in_page
    page.goto("/contacts/preferences/")
    page.get_by_label("Recipient key").fill("u1")
    page.get_by_role("button", name="Show").click()
    page.wait_for_url("**/contacts/preferences/?recipient=u1")
    sms = page.locator("tr[data-category='orders'] input[value='orders:sms']")
    expect(sms).to_be_checked()
    assert serious_accessibility_violations(page) == []
    sms.uncheck()
    page.get_by_role("button", name="Save preferences").click()
    expect(page.locator(".messages")).to_contain_text("1 preference(s) changed for u1.")
    expect(page.locator("tr[data-category='orders'] input[value='orders:sms']")).not_to_be_checked()
    assert Preference.objects.get(recipient="u1", category="orders").channels == ["email", "push"]


def test_a_recipient_follows_the_signed_link_and_turns_the_category_off(
    page: Any, live_server: Any, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONSOLE_COMMS = {"UNSUBSCRIBE_BASE_URL": live_server.url, "ALERT_EMAILS": []}
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: None)
    cls = lookup("order_confirmation")
    assert cls is not None
    message = send(cls.sample(), to=Recipient("u2", email="u2@example.com"))

    page.goto(message.unsubscribe_url)
    expect(page.get_by_role("heading", name="Email preferences")).to_be_visible()
    assert serious_accessibility_violations(page) == []
    assert not Preference.objects.filter(recipient="u2").exists()  # opening the link changes nothing
    page.get_by_role("button", name="Turn off orders messages").click()
    expect(page.get_by_test_id("unsubscribe-done")).to_contain_text("You will no longer receive orders messages")
    assert serious_accessibility_violations(page) == []
    assert Preference.objects.get(recipient="u2", category="orders").channels == []

    page.goto(message.unsubscribe_url)
    expect(page.get_by_test_id("unsubscribe-problem")).to_contain_text("You have already turned off orders messages")
    assert serious_accessibility_violations(page) == []
