"""Someone on call browses the audit log in Chromium: filters by type and actor, opens an event, follows its stream."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from console.events.pipeline import batch, emit
from tests.conftest import PASSWORD
from tests.events.conftest import PING

pytestmark = pytest.mark.browser


def test_filter_by_type_and_actor_open_an_event_and_follow_its_stream(signed_in_page: Any) -> None:
    page = signed_in_page
    alice = User.objects.create_user("alice", password=PASSWORD, is_staff=True)
    bob = User.objects.create_user("bob", password=PASSWORD, is_staff=True)
    with batch():
        for n in range(12):
            emit(PING, actor=alice if n % 2 else bob, stream_type="order", stream_id=f"order-{n % 3}", n=n)
            emit("auth.logged_out", actor=alice, username="alice")
    target = emit(PING, actor=alice, stream_type="order", stream_id="order-42", n=99, note="the one")
    assert target is not None

    page.get_by_role("link", name="Events", exact=True).click()
    page.wait_for_url("**/events/")
    page.get_by_role("heading", name="Events").wait_for()

    page.get_by_label("Type", exact=True).fill("test.ping")
    page.get_by_label("Actor").fill("alice")
    page.get_by_label("Actor").press("Enter")
    # The filters apply through htmx and the URL is pushed, so the view is bookmarkable.
    page.wait_for_url("**/events/?*type=test.ping*actor=alice*")
    region = page.locator("#table-region")
    rows = region.locator("tbody tr")
    rows.first.wait_for()
    texts = rows.all_inner_texts()
    assert len(texts) == 7
    assert all("test.ping" in text and "alice" in text for text in texts)
    assert "bob" not in region.inner_text() and "auth.logged_out" not in region.inner_text()

    region.get_by_role("link", name=f"#{target.position}", exact=True).click()
    page.wait_for_url(f"**/events/{target.position}/")
    page.get_by_role("heading", name=f"Event #{target.position}: test.ping").wait_for()
    assert "the one" in page.locator("pre.json").first.inner_text()

    page.get_by_test_id("stream-link").click()
    page.wait_for_url("**/events/?stream=order-42")
    stream_rows = page.locator("#table-region tbody tr")
    stream_rows.first.wait_for()
    assert stream_rows.count() == 1
    assert f"#{target.position}" in stream_rows.first.inner_text()
    assert page.get_by_label("Stream").input_value() == "order-42"
