"""A real worker process killed mid-batch: the reconciler finishes the batch, duplicating only the cut send."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from console.comms.classes import lookup
from console.comms.maintenance import reconcile
from console.comms.models import Attempt, Delivery, Message, Status
from console.comms.sending import send
from console.events.models import Event
from tests.comms.smtp import ACCEPT_HANG, SMTPServer, smtp_for_worker  # noqa: F401  (fixture)
from tests.conftest import Worker, wait_for

ADDRESSES = [f"k{i}@example.com" for i in range(5)]


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_between_claim_and_send_loses_nothing(
    smtp_for_worker: SMTPServer,  # noqa: F811  (the fixture imported above)
    worker: Worker,
    settings: Any,
) -> None:
    smtp = smtp_for_worker.handler
    smtp.script_data("k2@example.com", ACCEPT_HANG)
    cls = lookup("order_confirmation")
    assert cls is not None
    from django.db import transaction

    with transaction.atomic():
        for address in ADDRESSES:
            send(cls.sample(), to=address)
    # The worker claims the batch, sends k0 and k1, and is in the middle of k2's SMTP transaction...
    wait_for(lambda: smtp.to("k2@example.com"), timeout=30, what=f"k2 accepted ({worker.output()[-1500:]})")
    worker.kill()
    assert Delivery.objects.filter(status=Status.SENDING).count() == 3
    assert Delivery.objects.filter(status=Status.SENT).count() == 2

    # ...then the tick's reconciler, once the lease is over, re-sends the three claimed deliveries here.
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    Delivery.objects.filter(status=Status.SENDING).update(claimed_at=timezone.now() - timedelta(hours=1))
    Delivery.objects.filter(status=Status.SENT).update(sent_at=timezone.now() - timedelta(minutes=5))
    reconcile()
    assert set(Message.objects.values_list("status", flat=True)) == {Status.SENT}
    copies = {address: len(smtp.to(address)) for address in ADDRESSES}
    assert copies == {
        "k0@example.com": 1,
        "k1@example.com": 1,
        "k2@example.com": 2,
        "k3@example.com": 1,
        "k4@example.com": 1,
    }
    assert Attempt.objects.filter(outcome="sent").count() == 5
    assert Event.objects.filter(type="message.sent").count() == 5
