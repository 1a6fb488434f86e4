"""Staff resend a webhook delivery from the endpoint's page in Chromium (real receiver on 127.0.0.1)."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from console.events.models import WebhookDelivery
from console.events.pipeline import emit
from console.events.services import webhook_create
from console.events.subscriptions import catch_up
from console.events.webhook_sender import deliver_due
from tests.conftest import serious_accessibility_violations
from tests.events.conftest import PUBLISHED, Receiver, receiver, start_receiver  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser


def test_staff_resend_a_delivery_and_see_it_queued_then_delivered(
    signed_in_page: Any,
    admin_user: User,
    receiver: Receiver,  # noqa: F811  (the fixture imported above)
    settings: Any,
) -> None:
    settings.CONSOLE_EVENTS = {**settings.CONSOLE_EVENTS, "WEBHOOK_ALLOW_PRIVATE": True}
    endpoint = webhook_create(actor=admin_user, name="Receiver", url=receiver.url, event_types=[])
    receiver.secret = endpoint.secret
    event = emit(PUBLISHED, n=1, colour="red")
    assert event is not None
    catch_up("events.webhooks")
    deliver_due()
    first = WebhookDelivery.objects.get()

    page = signed_in_page
    page.goto(f"/webhooks/{endpoint.pk}/")
    rows = page.locator("#table-region tbody tr")
    expect(rows).to_have_count(1)
    rows.get_by_role("button", name="Resend").click()

    expect(page.locator(".messages")).to_contain_text(f"Event #{event.position} queued again as delivery")
    again = WebhookDelivery.objects.exclude(pk=first.pk).get()
    expect(page.locator(".messages")).to_have_text(f"Event #{event.position} queued again as delivery {again.pk}.")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("pending")
    deliver_due()
    assert [r["verified"] for r in receiver.received] == [True, True]
    assert receiver.received[0]["headers"]["webhook-id"] == receiver.received[1]["headers"]["webhook-id"]


def test_staff_send_a_test_event_and_see_the_receivers_answer(
    signed_in_page: Any,
    admin_user: User,
    receiver: Receiver,  # noqa: F811  (the fixture imported above)
    settings: Any,
) -> None:
    settings.CONSOLE_EVENTS = {**settings.CONSOLE_EVENTS, "WEBHOOK_ALLOW_PRIVATE": True}
    endpoint = webhook_create(actor=admin_user, name="Receiver", url=receiver.url, event_types=[])
    receiver.secret = endpoint.secret

    page = signed_in_page
    page.goto(f"/webhooks/{endpoint.pk}/")
    assert serious_accessibility_violations(page) == []
    page.get_by_role("button", name="Send test event").click()
    result = page.locator("#test-result")
    expect(result).to_contain_text("accepted")
    expect(result).to_contain_text("HTTP 200")
    # The receiver's own answer, as it sent it.
    expect(result.locator("pre")).to_have_text("ok")
    assert page.url.endswith(f"/webhooks/{endpoint.pk}/")
    (sample,) = receiver.received
    assert sample["verified"] and sample["body"]["type"] == "console.webhook.test"
    assert serious_accessibility_violations(page) == []


def test_staff_replay_a_range_and_watch_the_operation_finish(
    signed_in_page: Any,
    admin_user: User,
    receiver: Receiver,  # noqa: F811  (the fixture imported above)
    settings: Any,
) -> None:
    settings.CONSOLE_EVENTS = {**settings.CONSOLE_EVENTS, "WEBHOOK_ALLOW_PRIVATE": True}
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    endpoint = webhook_create(actor=admin_user, name="Receiver", url=receiver.url, event_types=[])
    receiver.secret = endpoint.secret
    positions = []
    for n in range(6):
        event = emit(PUBLISHED, n=n, colour="red")
        assert event is not None
        positions.append(event.position)
    catch_up("events.webhooks")
    deliver_due()

    page = signed_in_page
    page.goto(f"/webhooks/{endpoint.pk}/")
    page.get_by_role("link", name="Replay a range").click()
    page.wait_for_url(f"**/webhooks/{endpoint.pk}/replay/")
    assert serious_accessibility_violations(page) == []
    # A reversed range is refused with a message, and nothing starts.
    page.get_by_label("From position").fill(str(positions[4]))
    page.get_by_label("To position").fill(str(positions[1]))
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_test_id("replay-error")).to_contain_text("The range is reversed")
    page.get_by_label("From position").fill(str(positions[1]))
    page.get_by_label("To position").fill(str(positions[4]))
    page.get_by_role("button", name="Replay").click()
    operation = page.get_by_test_id("operation")
    expect(operation).to_have_attribute("data-state", "succeeded")
    expect(operation.get_by_test_id("operation-done")).to_contain_text("4 of 4 done")
    expect(page.locator(".messages")).to_contain_text(f"Replay 4 events #{positions[1]} to #{positions[4]}")
    assert serious_accessibility_violations(page) == []
    deliver_due()
    replayed = receiver.received[6:]
    assert [int(record["body"]["id"]) for record in replayed] == positions[1:5]
    assert all(record["body"]["replay"] is True and record["verified"] for record in replayed)
