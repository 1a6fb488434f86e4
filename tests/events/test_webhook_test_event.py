"""Send test event: a signed sample to a real local receiver, its answer shown inline (htmx) or as a message."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler

from django.contrib.auth.models import User
from django.test import Client

from console.events.models import Event, WebhookDelivery, WebhookEndpoint, WebhookHealth
from tests.events.conftest import Receiver


def _answer_with_markup(handler: BaseHTTPRequestHandler) -> None:
    body = b"thanks <b>from</b> the receiver"
    handler.send_response(202)
    handler.send_header("content-length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def test_htmx_shows_the_receivers_answer_inline_and_the_sample_is_signed(
    client: Client, operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    receiver.respond = _answer_with_markup
    client.force_login(operator)
    response = client.post(f"/webhooks/{endpoint.pk}/test/", headers={"HX-Request": "true"})
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="test-result"')
    assert "accepted" in html and "HTTP 202" in html
    assert "thanks &lt;b&gt;from&lt;/b&gt; the receiver" in html
    (sample,) = receiver.received
    assert sample["verified"] and sample["body"]["type"] == "console.webhook.test"
    assert sample["headers"]["webhook-id"].startswith("msg_test_")
    tested = Event.objects.get(type="webhook.tested")
    assert tested.actor == operator and tested.data == {
        "endpoint_id": endpoint.pk,
        "ok": True,
        "status_code": 202,
        "error": "",
    }
    # A test is not a delivery and does not count towards the endpoint's health.
    assert not WebhookDelivery.objects.exists() and not WebhookHealth.objects.exists()


def test_a_refusing_receiver_is_shown_as_not_accepted(
    client: Client, operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    receiver.answers = [500]
    client.force_login(operator)
    html = client.post(f"/webhooks/{endpoint.pk}/test/", headers={"HX-Request": "true"}).content.decode()
    assert "not accepted" in html and "HTTP 500" in html
    assert Event.objects.get(type="webhook.tested").data["ok"] is False


def test_without_htmx_it_redirects_with_a_message(
    client: Client, operator: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    client.force_login(operator)
    response = client.post(f"/webhooks/{endpoint.pk}/test/", follow=True)
    assert response.redirect_chain == [(f"/webhooks/{endpoint.pk}/", 302)]
    assert "Test event accepted: HTTP 200" in response.content.decode()


def test_an_unreachable_endpoint_says_why(client: Client, operator: User, endpoint: WebhookEndpoint) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url="http://127.0.0.1:9/hook")
    client.force_login(operator)
    html = client.post(f"/webhooks/{endpoint.pk}/test/", headers={"HX-Request": "true"}).content.decode()
    assert "not accepted" in html and "ConnectError" in html


def test_staff_without_the_permission_cannot_send_one(
    client: Client, staff: User, endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    client.force_login(staff)
    assert "Send test event" not in client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert client.post(f"/webhooks/{endpoint.pk}/test/").status_code == 403
    assert not receiver.received
