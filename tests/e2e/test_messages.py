"""Staff filter failed messages, select two, resend them, and watch them delivered (real worker, real SMTP);
and page through the messages in place."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from console.comms.classes import lookup
from console.comms.models import Message, Status
from console.comms.sending import send
from console.comms.views import sign
from tests.comms.smtp import SMTPServer, smtp_for_worker  # noqa: F401  (fixture)
from tests.conftest import Worker, wait_for

pytestmark = pytest.mark.browser


def test_staff_resend_two_failed_messages_and_see_them_delivered(
    smtp_for_worker: SMTPServer,  # noqa: F811  (the fixture imported above)
    worker: Worker,
    signed_in_page: Any,
    settings: Any,
) -> None:
    settings.CONSOLE_COMMS = {"INBOUND_SECRET": "provider-secret", "ALERT_EMAILS": []}
    page = signed_in_page
    cls = lookup("order_confirmation")
    assert cls is not None
    addresses = ["one@example.com", "two@example.com", "three@example.com"]
    for address in addresses:
        smtp_for_worker.handler.script(address, "550 5.7.1 Rejected by policy")
    messages = [send(cls.sample(), to=address) for address in addresses]
    wait_for(
        lambda: Message.objects.filter(pk__in=[m.pk for m in messages], status=Status.FAILED).count() == 3,
        timeout=30,
        what=f"three failed messages (worker log: {worker.output()[-2000:]})",
    )
    sent_elsewhere = send(cls.sample(), to="fine@example.com")
    wait_for(lambda: Message.objects.get(pk=sent_elsewhere.pk).status == Status.SENT, what="a sent message")

    page.goto("/messages/")
    page.get_by_label("Status").select_option("failed")
    page.wait_for_url("**/messages/?*status=failed*")
    page.locator("#table-region tbody tr[data-status='sent']").first.wait_for(state="detached")
    assert page.locator("#table-region tbody tr").count() == 3

    first, second = messages[0], messages[1]
    page.get_by_label(f"Select message {first.pk}", exact=True).check()
    page.get_by_label(f"Select message {second.pk}", exact=True).check()
    page.get_by_role("button", name="Resend selected").click()
    page.wait_for_url("**/messages/?*status=failed*")
    assert "2 message(s) queued for resending" in page.content()

    for message in (first, second):
        page.goto(f"/messages/{message.pk}/")
        # The detail page polls while the message is in flight and stops when it is final.
        page.get_by_test_id("message-status").filter(has_text="Sent").wait_for(timeout=30_000)
        assert page.locator("#message-state").get_attribute("hx-trigger") is None
    # SMTP acceptance is "sent"; the provider's signed delivery report makes it "delivered".
    for n, message in enumerate((first, second)):
        delivery = message.deliveries.get(status=Status.SENT)
        body = json.dumps(
            {
                "event_id": f"report-{n}",
                "event": "delivered",
                "metadata": {"console_message_id": message.pk, "console_delivery_id": delivery.pk},
            }
        ).encode()
        answer = page.request.post(
            reverse("comms:inbound"),
            data=body,
            headers={"Content-Type": "application/json", "X-Console-Signature": sign("provider-secret", body)},
        )
        assert answer.status == 200, answer.text()
        page.goto(f"/messages/{message.pk}/")
        assert page.get_by_test_id("message-status").inner_text().strip() == "Delivered"
    assert len(smtp_for_worker.handler.to("one@example.com")) == 1
    assert len(smtp_for_worker.handler.to("two@example.com")) == 1
    assert smtp_for_worker.handler.to("three@example.com") == []
    assert Message.objects.get(pk=messages[2].pk).status == Status.FAILED


def test_staff_page_through_messages_in_place_and_the_address_follows(signed_in_page: Any) -> None:
    page = signed_in_page
    now = timezone.now()
    Message.objects.bulk_create(
        Message(
            message_type="order_confirmation",
            category="transactional",
            recipient=f"r{n:02d}@example.com",
            status=Status.FAILED,
            created_at=now - timedelta(minutes=n),
            expires_at=now + timedelta(days=1),
        )
        for n in range(30)
    )
    page.goto("/messages/?per_page=25")
    rows = page.locator("#table-region tbody tr")
    assert rows.count() == 25
    # A page that htmx swaps in place keeps this; a whole-page load would forget it.
    page.evaluate("window.pagedInPlace = true")

    page.get_by_role("link", name="Next page").click()
    page.wait_for_url("**/messages/?per_page=25&after=*")
    page.get_by_role("link", name="Previous page").wait_for()
    assert rows.count() == 5 and "r29@example.com" in rows.last.inner_text()
    assert page.get_by_role("link", name="Next page").count() == 0

    page.get_by_role("link", name="Previous page").click()
    page.wait_for_url("**/messages/?per_page=25&before=*")
    page.get_by_role("link", name="Next page").wait_for()
    assert rows.count() == 25 and "r00@example.com" in rows.first.inner_text()
    assert page.evaluate("window.pagedInPlace") is True
