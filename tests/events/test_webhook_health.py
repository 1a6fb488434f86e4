"""Endpoint health: hourly success and latency, disabling after a period of failures or at a 410, alerts,
and enabling again from where it stopped or from now. Deliveries go to a real local HTTP receiver."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from console.core.models import Operation
from console.events.models import Event, WebhookDelivery, WebhookEndpoint, WebhookHealth
from console.events.services import webhook_enable
from console.events.webhook_replay import run_replay
from console.events.webhook_sender import deliver_due
from tests.events.conftest import Receiver, publish


@pytest.fixture
def one_hour(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_DISABLE_AFTER_HOURS": 1}
    settings.ADMINS = ["ops@example.com"]


def _fail_for(endpoint: WebhookEndpoint, hours: float) -> None:
    """As if the endpoint's first failure in a row had been ``hours`` ago."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failing_since=timezone.now() - timedelta(hours=hours))


def _fresh(endpoint: WebhookEndpoint) -> WebhookEndpoint:
    return WebhookEndpoint.objects.get(pk=endpoint.pk)


def _due_now() -> None:
    WebhookDelivery.objects.update(next_attempt_at=timezone.now())


def test_it_counts_attempts_successes_and_latency_per_hour(endpoint: WebhookEndpoint, receiver: Receiver) -> None:
    receiver.answers = [500, 200]
    publish(1)
    publish(2)
    deliver_due()
    row = WebhookHealth.objects.get(endpoint=endpoint)
    assert (row.attempts, row.succeeded, row.success_percent) == (2, 1, 50)
    assert row.hour == timezone.now().replace(minute=0, second=0, microsecond=0)
    assert row.max_ms >= row.mean_ms >= 0 and row.total_ms >= row.max_ms
    endpoint.refresh_from_db()
    assert endpoint.last_error == "HTTP 500" and endpoint.last_error_at is not None
    assert endpoint.last_success_at is not None and endpoint.failing_since is None


def test_failing_for_the_whole_period_disables_alerts_and_emits(
    endpoint: WebhookEndpoint, receiver: Receiver, one_hour: None, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.answers = [500, 500]
    publish()
    deliver_due()
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.failing_since is not None
    _fail_for(endpoint, 0.5)
    _due_now()
    deliver_due()
    assert _fresh(endpoint).active, "half the period is not the whole period"
    _fail_for(endpoint, 1.01)
    receiver.answers = [500]
    _due_now()
    with django_capture_on_commit_callbacks(execute=True):
        deliver_due()
    endpoint = _fresh(endpoint)
    assert not endpoint.active and "Nothing but failures for 1 hours" in endpoint.disabled_reason
    assert endpoint.disabled_at is not None and endpoint.disabled_position is not None
    disabled = Event.objects.get(type="webhook.disabled")
    assert disabled.data["endpoint_id"] == endpoint.pk
    (alert,) = mail.outbox
    assert alert.to == ["ops@example.com"] and "Receiver" in alert.subject and "Nothing but failures" in alert.body


def test_a_success_within_the_period_starts_it_again(
    endpoint: WebhookEndpoint, receiver: Receiver, one_hour: None
) -> None:
    receiver.answers = [500, 200]
    publish()
    deliver_due()
    _due_now()
    deliver_due()
    assert _fresh(endpoint).failing_since is None and _fresh(endpoint).failure_streak == 0
    receiver.answers = [500]
    publish(2)
    deliver_due()
    endpoint = _fresh(endpoint)
    assert endpoint.active and endpoint.failing_since is not None
    assert timezone.now() - endpoint.failing_since < timedelta(minutes=1)


def test_410_gone_disables_at_once_and_alerts(
    endpoint: WebhookEndpoint, receiver: Receiver, one_hour: None, django_capture_on_commit_callbacks: Any
) -> None:
    receiver.answers = [410]
    publish()
    with django_capture_on_commit_callbacks(execute=True):
        deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    assert len(mail.outbox) == 1 and Event.objects.filter(type="webhook.disabled").count() == 1


def test_a_disabled_endpoints_waiting_deliveries_are_not_sent(
    endpoint: WebhookEndpoint, receiver: Receiver, one_hour: None
) -> None:
    receiver.answers = [503]
    publish()
    deliver_due()
    _fail_for(endpoint, 2)
    publish(2)
    receiver.answers = [503]
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active
    sent = len(receiver.received)
    _due_now()
    assert deliver_due() == {"sent": 0, "failed": 0}
    assert len(receiver.received) == sent


def _disable_with_backlog(endpoint: WebhookEndpoint, receiver: Receiver) -> list[int]:
    """Gone at the first delivery, then three events published while off; returns all four positions."""
    receiver.answers = [410]
    first = publish(1)
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active
    later = [publish(n).position for n in (2, 3, 4)]
    assert WebhookDelivery.objects.count() == 1
    return [first.position, *later]


def test_enabling_from_where_it_stopped_delivers_what_was_missed_once_each(
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    operator: User,
    immediate: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    positions = _disable_with_backlog(endpoint, receiver)
    # The one that got 410 failed for good; the three published while off are queued by an operation.
    with django_capture_on_commit_callbacks(execute=True):
        enabled = webhook_enable(actor=operator, endpoint=endpoint, resume=True)
    assert (enabled.due, enabled.skipped) == (0, 0) and enabled.missed is not None
    operation = Operation.objects.get(pk=enabled.missed.pk)
    assert operation.state == "succeeded" and (operation.done, operation.total) == (3, 3)
    deliver_due()
    delivered = [int(r["body"]["id"]) for r in receiver.received[1:]]
    assert delivered == positions[1:]
    assert all(r["verified"] and "replay" not in r["body"] for r in receiver.received)
    enabled_event = Event.objects.get(type="webhook.enabled")
    assert enabled_event.actor == operator and enabled_event.data == {
        "endpoint_id": endpoint.pk,
        "resume": True,
        "queued": 0,
        "skipped": 0,
        "operation_id": operation.pk,
    }
    endpoint.refresh_from_db()
    assert endpoint.active and endpoint.disabled_at is None and endpoint.failure_streak == 0
    # Publishing goes on as usual, and enabling twice queues nothing again.
    fifth = publish(5)
    assert webhook_enable(actor=operator, endpoint=endpoint, resume=True).missed is None
    deliver_due()
    assert [int(r["body"]["id"]) for r in receiver.received[4:]] == [fifth.position]


def test_resuming_skips_what_the_endpoint_already_has_and_makes_waiting_ones_due(
    endpoint: WebhookEndpoint, receiver: Receiver, operator: User, one_hour: None
) -> None:
    receiver.answers = [503]
    first = publish(1)
    deliver_due()
    _fail_for(endpoint, 2)
    receiver.answers = [503]
    _due_now()
    deliver_due()
    endpoint = _fresh(endpoint)
    assert not endpoint.active
    # The publisher had already queued this one before the endpoint went off: resuming must not add another.
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(disabled_position=first.position - 1)
    second = publish(2)
    enabled = webhook_enable(actor=operator, endpoint=endpoint, resume=True)
    assert enabled.due == 1 and enabled.missed is not None and enabled.missed.total == 2
    run_replay(enabled.missed)
    assert sorted(WebhookDelivery.objects.values_list("event_position", flat=True)) == [first.position, second.position]
    assert deliver_due() == {"sent": 2, "failed": 0}


def test_enabling_from_now_gives_up_what_waited_and_skips_what_was_missed(
    endpoint: WebhookEndpoint, receiver: Receiver, operator: User, one_hour: None
) -> None:
    receiver.answers = [503]
    publish(1)
    deliver_due()
    _fail_for(endpoint, 2)
    receiver.answers = [503]
    _due_now()
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active
    assert WebhookDelivery.objects.get().status == "retrying"
    publish(2)
    enabled = webhook_enable(actor=operator, endpoint=endpoint, resume=False)
    assert (enabled.due, enabled.skipped, enabled.missed) == (0, 1, None)
    assert WebhookDelivery.objects.get().status == "failed"
    later = publish(3)
    deliver_due()
    assert [int(r["body"]["id"]) for r in receiver.received[2:]] == [later.position]


def test_the_page_shows_health_and_enables_with_the_users_choice(
    client: Client, operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    _disable_with_backlog(endpoint, receiver)
    client.force_login(operator)
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert "410 Gone" in page and "Last 24 hours, hour by hour" in page and "0%" in page
    assert "HTTP 410" in page and "Enable again and deliver" in page
    assert "were disabled after failing" in client.get("/webhooks/").content.decode()
    assert client.post(f"/webhooks/{endpoint.pk}/enable/", {"resume": "maybe"}).status_code == 400
    response = client.post(f"/webhooks/{endpoint.pk}/enable/", {"resume": "1"})
    assert response.status_code == 302 and response["Location"] == f"/webhooks/{endpoint.pk}/replay/"
    page = client.get(response["Location"]).content.decode()
    assert "the 3 events published while it was off are being queued" in page
    assert "Deliver what “Receiver” missed while it was off" in page


def test_staff_without_the_permission_cannot_enable(
    client: Client, staff: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    _disable_with_backlog(endpoint, receiver)
    client.force_login(staff)
    assert "Enable again" not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert client.post(f"/webhooks/{endpoint.pk}/enable/", {"resume": "1"}).status_code == 403
    endpoint.refresh_from_db()
    assert not endpoint.active
