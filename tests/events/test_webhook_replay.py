"""Replay: re-deliver to one endpoint every event of a position or time range, as a background operation
with progress and cancel; deliveries say they are replays. Sent to a real local HTTP receiver."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from console.core.models import Operation
from console.events.models import Event, WebhookDelivery, WebhookEndpoint
from console.events.pipeline import emit
from console.events.subscriptions import catch_up
from console.events.webhook_replay import KIND, ReplayRange, by_positions, run_replay
from console.events.webhook_sender import deliver_due
from tests.events.conftest import PING, Receiver, publish


def _positions(receiver: Receiver, start: int = 0) -> list[int]:
    return [int(record["body"]["id"]) for record in receiver.received[start:]]


def test_replaying_a_position_range_delivers_exactly_its_events_once_each(
    client: Client,
    operator: User,
    endpoint: WebhookEndpoint,
    receiver: Receiver,
    immediate: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    published = [publish(n).position for n in range(10)]
    # Events of the range that the endpoint does not receive: not published at all.
    emit(PING, n=99)
    catch_up("events.webhooks")
    deliver_due()
    assert _positions(receiver) == published
    first, last = published[2], published[7]
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/webhooks/{endpoint.pk}/replay/", {"first": first, "last": last})
    assert response.status_code == 302
    operation = Operation.objects.get(kind=KIND)
    assert operation.state == "succeeded" and (operation.done, operation.total) == (6, 6)
    assert operation.requested_by == operator
    deliver_due()
    replayed = receiver.received[10:]
    assert _positions(receiver, 10) == published[2:8]
    assert all(record["body"]["replay"] is True and record["verified"] for record in replayed)
    assert [r["headers"]["webhook-id"] for r in replayed] == [f"evt_{p}" for p in published[2:8]]
    assert WebhookDelivery.objects.filter(replay=True).count() == 6
    assert "replay" not in receiver.received[0]["body"]
    started = Event.objects.get(type="webhook.replay_started")
    assert started.actor == operator
    assert started.data | {} == {
        "endpoint_id": endpoint.pk,
        "operation_id": operation.pk,
        "after": first - 1,
        "upto": last,
        "count": 6,
        "since": None,
        "until": None,
    }
    page = client.get(f"/webhooks/{endpoint.pk}/replay/").content.decode()
    assert f"Replay 6 events #{first} to #{last}" in page and 'data-state="succeeded"' in page


def test_a_time_range_replays_the_events_recorded_in_it(
    endpoint: WebhookEndpoint, receiver: Receiver, operator: User
) -> None:
    events = [publish(n) for n in range(4)]
    deliver_due()
    since, until = events[1].recorded_at, events[2].recorded_at
    client = Client()
    client.force_login(operator)
    with_form = client.post(
        f"/webhooks/{endpoint.pk}/replay/",
        {"since": since.isoformat(), "until": until.isoformat()},
    )
    assert with_form.status_code == 302
    operation = Operation.objects.get(kind=KIND)
    assert operation.total == len(
        [e for e in Event.objects.filter(type="test.published") if since <= e.recorded_at <= until]
    )
    run_replay(operation)
    replayed = sorted(WebhookDelivery.objects.filter(replay=True).values_list("event_position", flat=True))
    assert replayed == sorted(
        e.position for e in Event.objects.filter(type="test.published") if since <= e.recorded_at <= until
    )


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({}, "Give a position range or a time range: at least one end."),
        ({"first": "1", "since": "2026-01-01 00:00"}, "not both"),
        ({"first": "9", "last": "3"}, "The range is reversed: position 9 comes after 3."),
        ({"since": "2026-02-01 00:00", "until": "2026-01-01 00:00"}, "The range is reversed"),
        ({"first": "900000"}, "nothing to replay"),
        ({"since": "2000-01-01 00:00", "until": "2000-01-02 00:00"}, "nothing to replay"),
        ({"first": "-1"}, "greater than or equal to 1"),
        ({"first": "lots"}, "Enter a whole number"),
        ({"last": "99999999999999999999999"}, "less than or equal to"),
        ({"since": "tomorrow-ish"}, "Enter a valid date/time"),
    ],
)
def test_bad_ranges_are_refused_with_a_clear_message(
    client: Client, operator: User, endpoint: WebhookEndpoint, form: dict[str, str], message: str
) -> None:
    publish()
    client.force_login(operator)
    response = client.post(f"/webhooks/{endpoint.pk}/replay/", form)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Operation.objects.exists()


def test_a_large_range_needs_its_count_confirmed_and_a_huge_one_is_refused(
    client: Client, operator: User, endpoint: WebhookEndpoint, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {
        "WEBHOOK_ALLOW_PRIVATE": True,
        "WEBHOOK_REPLAY_CONFIRM_ABOVE": 2,
        "WEBHOOK_REPLAY_MAX_EVENTS": 4,
    }
    positions = [publish(n).position for n in range(5)]
    client.force_login(operator)
    asked = client.post(f"/webhooks/{endpoint.pk}/replay/", {"first": positions[0], "last": positions[2]})
    html = asked.content.decode()
    assert "This replays 3 events. Submit again to confirm." in html
    assert '<input type="hidden" name="confirmed" value="3">' in html and not Operation.objects.exists()
    # A count that no longer matches (the range changed) is asked again.
    again = client.post(
        f"/webhooks/{endpoint.pk}/replay/", {"first": positions[0], "last": positions[3], "confirmed": "3"}
    )
    assert "This replays 4 events." in again.content.decode() and not Operation.objects.exists()
    confirmed = client.post(
        f"/webhooks/{endpoint.pk}/replay/", {"first": positions[0], "last": positions[2], "confirmed": "3"}
    )
    assert confirmed.status_code == 302 and Operation.objects.get().total == 3
    huge = client.post(f"/webhooks/{endpoint.pk}/replay/", {"first": positions[0]})
    assert "More than 4 events match: replay a narrower range" in huge.content.decode()


def test_cancelling_a_queued_replay_records_who_and_queues_nothing(
    client: Client, operator: User, endpoint: WebhookEndpoint
) -> None:
    publish()
    client.force_login(operator)
    client.post(f"/webhooks/{endpoint.pk}/replay/", {"first": "1"})
    operation = Operation.objects.get()
    assert client.post(f"/operations/{operation.pk}/cancel").status_code == 302
    operation.refresh_from_db()
    assert operation.state == "cancelled"
    cancelled = Event.objects.get(type="webhook.replay_cancelled")
    assert cancelled.actor == operator and cancelled.data["operation_id"] == operation.pk
    assert not WebhookDelivery.objects.filter(replay=True).exists()


def test_a_cancel_stops_a_running_replay_between_batches_and_rolls_back_the_batch(
    endpoint: WebhookEndpoint, operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    positions = [publish(n).position for n in range(5)]
    monkeypatch.setattr("console.events.webhook_replay.BATCH", 2)
    replay = by_positions(endpoint, positions[0], positions[-1])
    operation = Operation.objects.create(
        kind=KIND, label="t", params={"endpoint": endpoint.pk, **replay.params()}, total=5, state="running"
    )
    real_advance = Operation.advance

    def advance_then_cancel(self: Operation, count: int = 1, **progress: Any) -> None:
        real_advance(self, count, **progress)
        Operation.objects.filter(pk=self.pk).update(cancel_requested_at=timezone.now())

    monkeypatch.setattr(Operation, "advance", advance_then_cancel)
    with pytest.raises(Exception, match=str(operation.pk)):
        run_replay(operation)
    # The first batch of two was written; the second was rolled back with its refused advance.
    assert list(WebhookDelivery.objects.filter(replay=True).values_list("event_position", flat=True)) == sorted(
        positions[:2], reverse=True
    )


def test_a_resumed_replay_goes_on_from_its_cursor(endpoint: WebhookEndpoint) -> None:
    positions = [publish(n).position for n in range(4)]
    replay = ReplayRange(after=positions[0] - 1, upto=positions[-1], types=("test.published",))
    operation = Operation.objects.create(
        kind=KIND,
        label="t",
        params={"endpoint": endpoint.pk, **replay.params()},
        progress={"cursor": positions[1]},
        done=2,
        total=4,
        state="running",
    )
    run_replay(operation)
    assert sorted(WebhookDelivery.objects.filter(replay=True).values_list("event_position", flat=True)) == positions[2:]
    assert Operation.objects.get(pk=operation.pk).done == 4


def test_staff_without_the_permission_cannot_replay(client: Client, staff: User, endpoint: WebhookEndpoint) -> None:
    client.force_login(staff)
    assert client.get(f"/webhooks/{endpoint.pk}/replay/").status_code == 403
    assert client.post(f"/webhooks/{endpoint.pk}/replay/", {"first": "1"}).status_code == 403
    assert "Replay a range" not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()


def test_the_replay_form_page_renders(client: Client, operator: User, endpoint: WebhookEndpoint) -> None:
    client.force_login(operator)
    html = client.get(f"/webhooks/{endpoint.pk}/replay/").content.decode()
    assert "From position" in html and "Recent replays" not in html
