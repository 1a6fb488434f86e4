"""Webhooks: signed CloudEvents out of the log, retries with backoff, disabling, SSRF guard, pages."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.events.models import Checkpoint, Event, WebhookDelivery, WebhookEndpoint
from console.events.pipeline import emit
from console.events.subscriptions import catch_up
from console.events.webhooks import (
    UnsafeURL,
    check_url,
    claim_due,
    deliver_due,
    retry_delay,
    sign,
    webhook_create,
)
from tests.events.conftest import PUBLISHED, Receiver


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_TIMEOUT_SECONDS": 5}


@pytest.fixture
def endpoint(db: None, allow_private: None, receiver: Receiver, operator: User) -> WebhookEndpoint:
    created = webhook_create(actor=operator, name="Receiver", url=receiver.url, event_types=[])
    receiver.secret = created.secret
    return created


def _publish(n: int = 1) -> Event:
    event = emit(PUBLISHED, n=n, colour="red")
    assert event is not None
    catch_up("events.webhooks")
    return event


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "http://127.0.0.1/hook", "http://10.1.2.3/", "http://[::1]/", "http://localhost/"]
)
def test_it_refuses_other_schemes_and_private_addresses(url: str) -> None:
    with pytest.raises(UnsafeURL):
        check_url(url)


def test_private_addresses_are_allowed_by_the_setting(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True}
    check_url("http://127.0.0.1:8000/hook")
    with pytest.raises(UnsafeURL):
        check_url("file:///etc/passwd")


def test_it_delivers_a_signed_cloudevent_once(endpoint: WebhookEndpoint, receiver: Receiver) -> None:
    event = _publish()
    assert deliver_due() == {"sent": 1, "failed": 0}
    (got,) = receiver.received
    assert got["verified"]
    assert got["headers"]["webhook-id"] == f"evt_{event.position}"
    assert got["headers"]["content-type"].startswith("application/cloudevents+json")
    body = got["body"]
    assert body["specversion"] == "1.0" and body["id"] == str(event.position)
    assert body["type"] == "test.published" and body["source"] == "/console/events"
    assert body["data"] == {"n": 1, "colour": "red"}
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "succeeded" and delivery.attempts == 1 and delivery.last_status_code == 200
    # Nothing is delivered twice: the checkpoint has moved past the event and the delivery is done.
    assert catch_up("events.webhooks") == 0
    assert deliver_due() == {"sent": 0, "failed": 0}
    assert len(receiver.received) == 1


def test_it_only_sends_the_types_an_endpoint_asked_for(endpoint: WebhookEndpoint, receiver: Receiver) -> None:
    endpoint.event_types = ["some.other"]
    endpoint.save()
    _publish()
    emit("auth.logged_out", username="not published")
    catch_up("events.webhooks")
    assert not WebhookDelivery.objects.exists()


def test_a_failing_receiver_is_retried_later_with_backoff(endpoint: WebhookEndpoint, receiver: Receiver) -> None:
    receiver.answers = [503]
    _publish()
    assert deliver_due() == {"sent": 0, "failed": 1}
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "retrying" and delivery.attempts == 1 and delivery.last_status_code == 503
    assert delivery.next_attempt_at > timezone.now()
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 1 and endpoint.active
    # Not due yet: nothing is sent.
    assert deliver_due() == {"sent": 0, "failed": 0}
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliver_due() == {"sent": 1, "failed": 0}
    endpoint.refresh_from_db()
    assert endpoint.failure_streak == 0
    assert [r["headers"]["webhook-id"] for r in receiver.received] == [delivery.message_id] * 2


def test_backoff_grows_and_is_jittered(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_RETRY_BASE_SECONDS": 10, "WEBHOOK_RETRY_MAX_SECONDS": 1000}
    delays = [retry_delay(n).total_seconds() for n in (1, 2, 3, 10)]
    assert 5 <= delays[0] <= 10 and 10 <= delays[1] <= 20 and 20 <= delays[2] <= 40 and 500 <= delays[3] <= 1000
    assert len({retry_delay(3).total_seconds() for _ in range(20)}) > 1


def test_410_gone_disables_the_endpoint(endpoint: WebhookEndpoint, receiver: Receiver) -> None:
    receiver.answers = [410]
    _publish()
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active and "410" in endpoint.disabled_reason
    assert WebhookDelivery.objects.get().status == "failed"
    assert Event.objects.filter(type="webhook.disabled", data__endpoint_id=endpoint.pk).exists()
    # A disabled endpoint receives nothing new.
    _publish(2)
    assert WebhookDelivery.objects.count() == 1


def test_a_long_failure_streak_disables_the_endpoint(
    endpoint: WebhookEndpoint, receiver: Receiver, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_DISABLE_AFTER_FAILURES": 3}
    receiver.answers = [500, 500, 500]
    for n in range(3):
        _publish(n)
    deliver_due()
    endpoint.refresh_from_db()
    assert not endpoint.active and "3 failed attempts" in endpoint.disabled_reason


def test_a_delivery_that_ran_out_of_attempts_fails(
    endpoint: WebhookEndpoint, receiver: Receiver, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_MAX_ATTEMPTS": 1}
    receiver.answers = [500]
    _publish()
    deliver_due()
    assert WebhookDelivery.objects.get().status == "failed"


def test_a_delivery_is_claimed_by_one_sender_only(endpoint: WebhookEndpoint) -> None:
    _publish()
    assert len(claim_due()) == 1
    assert claim_due() == []


def test_the_ssrf_guard_also_applies_when_sending(endpoint: WebhookEndpoint, receiver: Receiver, settings: Any) -> None:
    _publish()
    settings.CONSOLE_EVENTS = {}
    assert deliver_due() == {"sent": 0, "failed": 1}
    assert "private" in WebhookDelivery.objects.get().last_error
    assert receiver.received == []


# --- pages ------------------------------------------------------------------------------------------------------


def test_operator_creates_an_endpoint_and_the_event_names_them(
    client: Client, operator: User, allow_private: None
) -> None:
    client.force_login(operator)
    response = client.post(
        "/webhooks/new/",
        {"name": "CRM", "url": "http://127.0.0.1:9/hook", "event_types": ["test.published"], "active": "on"},
    )
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/webhooks/{endpoint.pk}/"
    assert endpoint.event_types == ["test.published"] and endpoint.secret.startswith("whsec_")
    created = Event.objects.get(type="webhook.created")
    assert created.actor == operator and created.data["name"] == "CRM"
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert endpoint.secret in page and "Nothing delivered to this endpoint yet." in page


@pytest.mark.parametrize(
    ("url", "error"),
    [("ftp://example.com/hook", "http:// or https://"), ("http://127.0.0.1/hook", "private or reserved")],
)
def test_bad_urls_are_refused_with_a_form_error(client: Client, operator: User, url: str, error: str) -> None:
    client.force_login(operator)
    response = client.post("/webhooks/new/", {"name": "x", "url": url})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert 'class="field-error"' in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


def test_staff_without_the_permission_cannot_create_or_resend(client: Client, staff: User, db: None) -> None:
    client.force_login(staff)
    assert client.get("/webhooks/new/").status_code == 403
    assert client.post("/webhooks/new/", {"name": "x", "url": "https://example.com/"}).status_code == 403
    assert client.post("/webhooks/deliveries/1/resend/").status_code == 403
    assert client.get("/webhooks/").status_code == 200


def test_edit_changes_the_endpoint_and_records_what_changed(
    client: Client, operator: User, endpoint: WebhookEndpoint
) -> None:
    client.force_login(operator)
    assert client.get(f"/webhooks/{endpoint.pk}/edit/").status_code == 200
    response = client.post(f"/webhooks/{endpoint.pk}/edit/", {"name": "Renamed", "url": endpoint.url})
    assert response.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.name == "Renamed" and not endpoint.active
    updated = Event.objects.get(type="webhook.updated")
    assert updated.actor == operator and updated.data["changed"] == ["active", "name"]


def test_the_delivery_log_lists_deliveries_and_resend_queues_one_again(
    client: Client, operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    event = _publish()
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    client.force_login(operator)
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert f"#{event.position}" in page and "succeeded" in page and "Resend" in page
    fragment = client.get(f"/webhooks/{endpoint.pk}/?status=succeeded", headers={"HX-Request": "true"})
    assert fragment.content.decode().lstrip().startswith('<div id="table-region"')
    response = client.post(f"/webhooks/deliveries/{delivery.pk}/resend/")
    assert response.status_code == 302
    again = WebhookDelivery.objects.exclude(pk=delivery.pk).get()
    assert again.status == "pending" and again.message_id == delivery.message_id
    resent = Event.objects.get(type="webhook.delivery_resent")
    assert resent.actor == operator and resent.data["resent_from"] == delivery.pk
    deliver_due()
    assert len(receiver.received) == 2


def test_the_resend_button_is_a_form_that_passes_the_csrf_check(
    operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    _publish()
    deliver_due()
    delivery = WebhookDelivery.objects.get()
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(operator)
    page = browser.get(f"/webhooks/{endpoint.pk}/").content.decode()
    form = re.search(rf'<form method="post" action="(/webhooks/deliveries/{delivery.pk}/resend/)">(.*?)</form>', page)
    assert form is not None, page
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.group(2))
    assert token is not None, form.group(0)
    response = browser.post(form.group(1), {"csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302
    assert WebhookDelivery.objects.exclude(pk=delivery.pk).get().status == "pending"


def test_staff_without_the_permission_see_no_resend_button(
    client: Client, staff: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    _publish()
    deliver_due()
    client.force_login(staff)
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert "succeeded" in page and "/resend/" not in page


def test_the_publisher_is_a_checkpointed_subscriber(endpoint: WebhookEndpoint) -> None:
    event = _publish()
    assert Checkpoint.objects.get(name="events.webhooks").position >= event.position
