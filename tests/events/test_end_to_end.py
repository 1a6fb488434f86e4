"""One emitted event: rendered once, counted, stored, and delivered signed to a receiver; driven for real."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from django.contrib.auth.models import User
from django.db import transaction
from django.test import Client

from console.core.tick import run_tick
from console.events.models import Checkpoint, Event, WebhookDelivery
from console.events.pipeline import emit
from console.events.services import webhook_create
from tests.conftest import Worker, wait_for
from tests.events.conftest import PUBLISHED, Receiver
from tests.events.test_metrics import sample


@pytest.fixture
def rendered() -> Iterator[io.StringIO]:
    """What the console's own handler renders, captured through its very formatter."""
    root = logging.getLogger()
    (console_handler,) = [
        handler for handler in root.handlers if isinstance(handler.formatter, structlog.stdlib.ProcessorFormatter)
    ]
    stream = io.StringIO()
    capture = logging.StreamHandler(stream)
    capture.setFormatter(console_handler.formatter)
    root.addHandler(capture)
    yield stream
    root.removeHandler(capture)


def test_one_event_is_rendered_once_counted_stored_and_delivered(
    client: Client, operator: User, receiver: Receiver, rendered: io.StringIO, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "METRICS_TOKEN": "t"}
    endpoint = webhook_create(actor=operator, name="Receiver", url=receiver.url, event_types=["test.published"])
    receiver.secret = endpoint.secret
    scrape = {"Authorization": "Bearer t"}
    before = client.get("/metrics", headers=scrape).content.decode()

    with transaction.atomic():
        event = emit(PUBLISHED, actor=operator, n=42, colour="blue")
    assert event is not None

    lines = [line for line in rendered.getvalue().splitlines() if "test.published" in line]
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "test.published" and record["level"] == "warning"
    assert record["n"] == 42 and record["position"] == event.position

    after = client.get("/metrics", headers=scrape).content.decode()
    label = '{colour="blue"}'
    assert (
        sample(after, "console_test_published_total", label) - sample(before, "console_test_published_total", label)
        == 1
    )

    stored = Event.objects.get(position=event.position)
    assert stored.type == "test.published" and stored.data == {"n": 42, "colour": "blue"}
    assert stored.actor == operator

    results = run_tick()
    assert results["events.webhooks"] == {"sent": 1, "failed": 0}
    (got,) = receiver.received
    assert got["verified"] and got["body"]["id"] == str(event.position) and got["body"]["data"]["n"] == 42


@pytest.mark.django_db(transaction=True)
def test_a_commit_that_appends_wakes_the_subscribers_through_the_worker(worker: Worker) -> None:
    with transaction.atomic():
        event = emit("auth.logged_out", username="someone")
    assert event is not None

    def caught_up() -> bool:
        checkpoint = Checkpoint.objects.filter(name="events.webhooks").first()
        return checkpoint is not None and checkpoint.position >= event.position

    wait_for(caught_up, timeout=30, what="the worker to catch the webhook publisher up")
    assert not WebhookDelivery.objects.exists()
