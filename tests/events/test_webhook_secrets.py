"""Signing secrets: shown once when made, never on a page after; a rotation signs with both secrets until the
old one expires, so a receiver holding either verifies every delivery."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.events.models import Event, WebhookEndpoint
from console.events.services import webhook_rotate_secret
from console.events.webhook_sender import deliver_due
from tests.events.conftest import Receiver, publish


def test_during_rotation_a_receiver_holding_either_secret_verifies_every_delivery(
    endpoint: WebhookEndpoint, receiver: Receiver, operator: User
) -> None:
    old = endpoint.secret
    new = webhook_rotate_secret(actor=operator, endpoint=endpoint, overlap=timedelta(hours=1))
    assert new != old and new.startswith("whsec_")
    for n in range(5):
        publish(n)
    # The receiver still holds the old secret, and accepts what it verifies.
    assert deliver_due() == {"sent": 5, "failed": 0}
    assert len(receiver.received) == 5
    for record in receiver.received:
        assert len(record["headers"]["webhook-signature"].split()) == 2
        assert receiver.verify(record["headers"], record["raw"], secret=old)
        assert receiver.verify(record["headers"], record["raw"], secret=new)
    # Switched to the new secret meanwhile: it verifies too.
    receiver.secret = new
    publish(6)
    assert deliver_due() == {"sent": 1, "failed": 0}


def test_once_the_old_secret_expires_only_the_new_one_signs(
    endpoint: WebhookEndpoint, receiver: Receiver, operator: User
) -> None:
    old = endpoint.secret
    new = webhook_rotate_secret(actor=operator, endpoint=endpoint, overlap=timedelta(hours=1))
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(previous_secret_expires_at=timezone.now())
    publish()
    # The receiver holding only the old secret now refuses (401), as it should.
    assert deliver_due() == {"sent": 0, "failed": 1}
    (record,) = receiver.received
    assert len(record["headers"]["webhook-signature"].split()) == 1
    assert receiver.verify(record["headers"], record["raw"], secret=new)
    assert not receiver.verify(record["headers"], record["raw"], secret=old)


def test_a_rotation_without_overlap_drops_the_old_secret_at_once(endpoint: WebhookEndpoint, operator: User) -> None:
    webhook_rotate_secret(actor=operator, endpoint=endpoint, overlap=timedelta(0))
    endpoint.refresh_from_db()
    assert endpoint.signing_secrets() == [endpoint.secret] and endpoint.previous_secret == ""


def test_the_secret_is_shown_once_on_creation_and_never_on_a_page_after(
    client: Client, operator: User, allow_private: None
) -> None:
    client.force_login(operator)
    response = client.post("/webhooks/new/", {"name": "CRM", "url": "http://127.0.0.1:9/hook", "active": "on"})
    endpoint = WebhookEndpoint.objects.get()
    assert response.status_code == 200 and endpoint.secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    for url in (
        "/webhooks/",
        f"/webhooks/{endpoint.pk}/",
        f"/webhooks/{endpoint.pk}/edit/",
        f"/webhooks/{endpoint.pk}/secret/",
    ):
        assert endpoint.secret not in client.get(url).content.decode(), url
    assert endpoint.secret not in str(Event.objects.get(type="webhook.created").data)


def test_rotating_from_the_page_shows_the_new_secret_once_and_records_who(
    client: Client, operator: User, endpoint: WebhookEndpoint
) -> None:
    old = endpoint.secret
    client.force_login(operator)
    form = client.get(f"/webhooks/{endpoint.pk}/secret/").content.decode()
    assert 'value="24.0"' in form and old not in form
    response = client.post(f"/webhooks/{endpoint.pk}/secret/", {"overlap_hours": "2"})
    endpoint.refresh_from_db()
    page = response.content.decode()
    assert response.status_code == 200 and endpoint.secret in page and old not in page
    assert "no-store" in response["Cache-Control"]
    assert endpoint.previous_secret == old and endpoint.rotating
    rotated = Event.objects.get(type="webhook.secret_rotated")
    assert rotated.actor == operator and old not in str(rotated.data) and endpoint.secret not in str(rotated.data)
    detail = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert "the previous one signs too until" in detail
    assert endpoint.secret not in detail and old not in detail


def test_a_bad_overlap_is_a_form_error(client: Client, operator: User, endpoint: WebhookEndpoint) -> None:
    client.force_login(operator)
    for value in ("-1", "lots", "100000"):
        response = client.post(f"/webhooks/{endpoint.pk}/secret/", {"overlap_hours": value})
        assert response.status_code == 200 and 'class="field-error"' in response.content.decode(), value
    endpoint.refresh_from_db()
    assert not endpoint.rotating and not Event.objects.filter(type="webhook.secret_rotated").exists()


def test_staff_without_the_permission_cannot_rotate(client: Client, staff: User, endpoint: WebhookEndpoint) -> None:
    client.force_login(staff)
    assert client.get(f"/webhooks/{endpoint.pk}/secret/").status_code == 403
    assert client.post(f"/webhooks/{endpoint.pk}/secret/", {"overlap_hours": "1"}).status_code == 403
    assert "Rotate" not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()
