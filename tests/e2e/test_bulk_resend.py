"""Staff resend every failed message matching a filter as a background operation and watch it to the end
(real worker, real SMTP): the dry-run count first, then a progress bar that stops polling when done."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from console.comms.models import Delivery, FailureClass, Message, Status
from console.core.models import Operation
from tests.comms.smtp import SMTPServer, smtp_for_worker  # noqa: F401  (fixture)
from tests.conftest import Worker

pytestmark = pytest.mark.browser

FAILED = 10_000


def test_staff_resend_all_matching_failed_messages_and_watch_the_operation_to_done(
    smtp_for_worker: SMTPServer,  # noqa: F811  (the fixture imported above)
    worker: Worker,
    signed_in_page: Any,
) -> None:
    now = timezone.now()
    Message.objects.bulk_create(
        (
            Message(
                message_type="order_confirmation",
                category="transactional",
                recipient=f"bulk{n}@example.com",
                addresses={"email": f"bulk{n}@example.com"},
                channels=["email"],
                subject="Your order",
                text_body="Thank you.",
                status=Status.FAILED,
                failure_class=FailureClass.TEMPORARY,
                created_at=now - timedelta(seconds=n),
                expires_at=now + timedelta(days=1),
            )
            for n in range(FAILED)
        ),
        batch_size=2000,
    )
    page = signed_in_page
    page.goto("/messages/?status=failed")
    page.get_by_role("button", name="Resend all matching…").click()
    assert page.get_by_test_id("resendable").inner_text().strip() == f"{FAILED}"
    page.get_by_role("button", name=f"Resend {FAILED} messages").click()

    page.wait_for_url("**/operations/*/")
    operation = page.get_by_test_id("operation")
    assert "Resend all messages matching status=failed" in operation.inner_text()
    operation.and_(page.locator("[data-state='succeeded']")).wait_for(timeout=300_000)
    assert page.get_by_test_id("operation-done").inner_text().split() == [f"{FAILED}", "of", f"{FAILED}", "done"]
    assert operation.get_attribute("hx-trigger") is None  # polling stopped
    done = Operation.objects.get(kind="comms.resend")
    assert done.progress["resent"] == FAILED and done.progress["skipped"] == 0
    assert Delivery.objects.filter(message__recipient__startswith="bulk").count() == FAILED
    assert not Message.objects.filter(status=Status.FAILED).exists()
    worker.stop()
