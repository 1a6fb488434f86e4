"""The dashboard's messages panel: the last day's outcomes from the rollups, and what waits now."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.comms import panels
from console.comms.models import Status
from console.events import rollups
from console.events.models import Event
from console.events.subscriptions import catch_up
from tests.comms.test_views import make
from tests.conftest import squeezed

pytestmark = pytest.mark.django_db


def sent(ago: timedelta, event_type: str = "message.sent", **data: Any) -> None:
    fields = {"message_id": 1, "message_type": "welcome", "channel": "email", "attempts": 1, **data}
    Event.objects.create(type=event_type, data=fields, recorded_at=timezone.now() - ago)


def facts(page: str, testid: str) -> str:
    return page.split(f'data-testid="{testid}">', 1)[1].split("</dl>", 1)[0]


def test_the_panel_counts_the_last_day_from_the_rollups_and_what_waits_now(
    client: Client, staff: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        sent(timedelta(hours=2))
    sent(timedelta(minutes=5), "message.failed", failure_class="recipient")
    sent(timedelta(hours=30))  # before the day the panel shows
    for n in range(3):
        make(Status.QUEUED, recipient=f"q{n}@example.com")
    make(Status.DEFERRED, recipient="later@example.com")
    make(Status.SENT, recipient="done@example.com")  # no longer waits
    catch_up(rollups.NAME)
    queued_events = Event.objects.filter(type="message.queued").count()
    assert queued_events == 5
    monkeypatch.setattr(panels, "WAITING_COUNTED", 2)
    client.force_login(staff)
    page = squeezed(client.get("/").content.decode())
    outcomes = facts(page, "message-outcomes")
    assert '<dt><span class="badge sent">sent</span></dt><dd>3</dd>' in outcomes
    assert '<dt><span class="badge failed">failed</span></dt><dd>1</dd>' in outcomes
    assert f'<dt><span class="badge queued">queued</span></dt><dd>{queued_events}</dd>' in outcomes
    waiting = facts(page, "messages-waiting")
    assert '<dt><span class="badge queued">queued</span></dt><dd>over 2</dd>' in waiting
    assert '<dt><span class="badge deferred">deferred</span></dt><dd>1</dd>' in waiting
    assert "sent" not in waiting


def test_the_panel_says_when_nothing_happened(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get("/").content.decode()
    assert "No messages in the last 24 hours." in page and 'data-testid="messages-waiting"' not in page
