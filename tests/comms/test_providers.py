"""SMS/push adapters against a local HTTP server, and provider reports (signed endpoint, anymail signal)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from console.comms.classes import lookup
from console.comms.models import ContactPoint, ContactState, Delivery, ProviderEvent, Status
from console.comms.outcomes import RECIPIENT, SENT, TEMPORARY
from console.comms.providers import HttpProvider, Outgoing
from console.comms.sending import Recipient, send
from console.comms.views import sign
from tests.comms.smtp import SMTPServer

Capture = Callable[..., Any]


class Provider(BaseHTTPRequestHandler):
    replies: list[tuple[int, dict[str, str], str]] = []
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Provider.received.append(body)
        status, headers, text = Provider.replies.pop(0) if Provider.replies else (200, {}, '{"id": "prov-1"}')
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(text.encode())

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def provider_url() -> Iterator[str]:
    Provider.replies, Provider.received = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Provider)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/send"
    server.shutdown()
    server.server_close()


OUT = Outgoing(channel="sms", to="+447700900123", text="hi", title="", message_id=7, delivery_id=9)


def test_the_http_adapter_sends_our_ids_as_metadata_and_reads_the_provider_id(provider_url: str) -> None:
    outcome = HttpProvider(url=provider_url, token="t").send(OUT)
    assert outcome.kind == SENT and outcome.provider_id == "prov-1"
    assert Provider.received[0]["metadata"] == {"console_message_id": 7, "console_delivery_id": 9}


def test_the_http_adapter_classifies_answers(provider_url: str) -> None:
    Provider.replies = [(429, {"Retry-After": "120"}, "slow down"), (410, {}, "number gone")]
    throttled = HttpProvider(url=provider_url).send(OUT)
    assert throttled.kind == TEMPORARY and throttled.retry_after == 120.0
    assert HttpProvider(url=provider_url).send(OUT).kind == RECIPIENT
    assert HttpProvider(url="http://127.0.0.1:9/none", timeout=1).send(OUT).kind == TEMPORARY


def test_sms_fallback_goes_through_the_configured_http_provider(
    smtp: SMTPServer, provider_url: str, db: None, settings: Any, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    settings.CONSOLE_COMMS = {
        **settings.CONSOLE_COMMS,
        "SMS_PROVIDER": {"CLASS": "console.comms.providers.HttpProvider", "OPTIONS": {"url": provider_url}},
    }
    smtp.handler.script("gone@example.com", "550 5.1.1 no such user")
    cls = lookup("order_confirmation")
    assert cls is not None
    with django_capture_on_commit_callbacks(execute=True):
        message = send(cls.sample(), to=Recipient("u1", email="gone@example.com", phone="+447700900123"))
    sms = message.deliveries.get(channel="sms")
    assert sms.status == Status.SENT and sms.provider_id == "prov-1"
    assert Provider.received[0]["metadata"]["console_message_id"] == message.pk
    assert Provider.received[0]["text"].startswith("Order A-1042 confirmed")


@pytest.fixture
def sent_delivery(db: None, settings: Any) -> Delivery:
    settings.CONSOLE_COMMS = {"INBOUND_SECRET": "s3cret", "ALERT_EMAILS": []}
    cls = lookup("order_confirmation")
    assert cls is not None
    message = send(cls.sample(), to="ada@example.com")
    delivery = message.deliveries.get()
    Delivery.objects.filter(pk=delivery.pk).update(status=Status.SENT, provider_id="<abc@example.com>")
    message.__class__.objects.filter(pk=message.pk).update(status=Status.SENT)
    delivery.refresh_from_db()
    return delivery


def post(client: Client, payload: dict[str, Any], secret: str = "s3cret") -> Any:
    body = json.dumps(payload).encode()
    return client.post(
        reverse("comms:inbound"),
        body,
        content_type="application/json",
        headers={"X-Console-Signature": sign(secret, body)},
    )


def test_a_report_that_does_not_verify_gets_400_and_changes_nothing(client: Client, sent_delivery: Delivery) -> None:
    payload = {"event_id": "e1", "event": "bounced", "provider_id": "<abc@example.com>", "code": "550"}
    assert post(client, payload, secret="wrong").status_code == 400
    body = json.dumps(payload).encode()
    unsigned = client.post(reverse("comms:inbound"), body, content_type="application/json")
    assert unsigned.status_code == 400
    stale = sign("s3cret", body, timestamp=1_000_000_000)
    assert (
        client.post(
            reverse("comms:inbound"), body, content_type="application/json", headers={"X-Console-Signature": stale}
        ).status_code
        == 400
    )
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Status.SENT and not ProviderEvent.objects.exists()


def test_reports_are_applied_once_and_never_move_backwards(client: Client, sent_delivery: Delivery) -> None:
    delivered = {"event_id": "e2", "event": "delivered", "metadata": {"console_delivery_id": sent_delivery.pk}}
    assert post(client, delivered).json() == {"result": "delivered"}
    assert post(client, delivered).json() == {"result": "duplicate"}
    late_deferred = {"event_id": "e0", "event": "delivered", "provider_id": "<abc@example.com>"}
    assert post(client, late_deferred).json() == {"result": "stale"}
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Status.DELIVERED
    assert sent_delivery.message.status == Status.DELIVERED
    assert post(client, {"event_id": "x", "event": "opened"}).status_code == 400
    huge = {"event_id": "e9", "event": "delivered", "metadata": {"console_delivery_id": "9" * 30}}
    assert post(client, huge).json() == {"result": "unmatched"}
    bad_json = b"not json"
    response = client.post(
        reverse("comms:inbound"),
        bad_json,
        content_type="application/json",
        headers={"X-Console-Signature": sign("s3cret", bad_json)},
    )
    assert response.status_code == 400


def test_an_anymail_bounce_marks_the_address_defunct(sent_delivery: Delivery) -> None:
    from anymail.signals import AnymailTrackingEvent, tracking

    event = AnymailTrackingEvent(
        event_type="bounced",
        event_id="ev-1",
        message_id="<abc@example.com>",
        recipient="ada@example.com",
        mta_response="550 5.1.1 The email account that you tried to reach does not exist",
        metadata={"console_message_id": str(sent_delivery.message_id)},
    )
    tracking.send(sender=object, event=event, esp_name="Postmark")
    tracking.send(sender=object, event=event, esp_name="Postmark")
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Status.FAILED
    assert ContactPoint.objects.get(address="ada@example.com").state == ContactState.DEFUNCT
    assert ProviderEvent.objects.count() == 1


def post_raw(client: Client, body: bytes, signature: str) -> Any:
    return client.post(
        reverse("comms:inbound"), body, content_type="application/json", headers={"X-Console-Signature": signature}
    )


HEX = "0" * 64
MALFORMED_SIGNATURES = {
    "a Unicode digit as the timestamp": f"t=²,v1={HEX}",
    "Arabic-Indic digits as the timestamp": f"t=\u0661\u0667\u0660\u0660\u0660\u0660\u0660\u0660\u0660\u0660,v1={HEX}",
    "a timestamp past int()'s digit limit": f"t={'9' * 5000},v1={HEX}",
    "a signed timestamp": f"t=-1,v1={HEX}",
    "a signature that is not hex": "t={now},v1=" + "é" * 64,
    "a signature too short": "t={now},v1=abc",
    "no signature": "t={now}",
    "no timestamp": f"v1={HEX}",
    "no pairs at all": "garbage",
}


@pytest.mark.parametrize("case", MALFORMED_SIGNATURES)
def test_a_malformed_signature_header_is_a_400_with_the_reason(
    client: Client, sent_delivery: Delivery, case: str
) -> None:
    header = MALFORMED_SIGNATURES[case].replace("{now}", str(int(time.time())))
    response = post_raw(client, json.dumps({"event_id": "e1", "event": "delivered"}).encode(), header)
    assert response.status_code == 400
    assert response.content.decode() == "missing or malformed signature"
    assert not ProviderEvent.objects.exists()


MALFORMED_REPORTS = {
    "not an object": (b"[1, 2]", "body must be a JSON object"),
    "NaN": (b'{"event_id": "e1", "event": "delivered", "x": NaN}', "body is not JSON"),
    "a number past the largest double": (b'{"event_id": "e1", "event": "delivered", "x": 1e999}', "body is not JSON"),
    "nested past the stack": (b'{"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "body is not JSON"),
    "nested deeper than any provider": (
        b'{"event_id": "e1", "event": "delivered", "x": ' + b"[" * 30 + b"]" * 30 + b"}",
        "payload is nested more than 20 levels deep",
    ),
    "a NUL in text": (
        b'{"event_id": "e\\u0000", "event": "delivered"}',
        "text in the payload must not contain NUL characters",
    ),
    "an empty event_id": (b'{"event_id": "", "event": "delivered"}', "event_id is required"),
    "an event that is not text": (
        b'{"event_id": "e1", "event": ["delivered"]}',
        "event must be one of delivered, bounced, rejected, complained, deferred",
    ),
    "metadata that is not an object": (
        b'{"event_id": "e1", "event": "delivered", "metadata": "x"}',
        "metadata must be an object",
    ),
    "our id in Unicode digits": (
        b'{"event_id": "e1", "event": "delivered", "metadata": {"console_delivery_id": "\\u00b2"}}',
        "metadata.console_delivery_id must be a whole number",
    ),
    "our id as a fraction": (
        b'{"event_id": "e1", "event": "delivered", "metadata": {"console_message_id": 1.5}}',
        "metadata.console_message_id must be a whole number",
    ),
    "a description that is not text": (
        b'{"event_id": "e1", "event": "bounced", "description": {"a": 1}}',
        "description must be a string",
    ),
    "a code that is an object": (
        b'{"event_id": "e1", "event": "bounced", "code": {}}',
        "code must be a string or a number",
    ),
}


@pytest.mark.parametrize("case", MALFORMED_REPORTS)
def test_a_signed_but_malformed_report_is_a_400_with_the_reason(
    client: Client, sent_delivery: Delivery, case: str
) -> None:
    body, reason = MALFORMED_REPORTS[case]
    response = post_raw(client, body, sign("s3cret", body))
    assert response.status_code == 400
    assert response.content.decode() == reason
    assert not ProviderEvent.objects.exists()
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Status.SENT


def test_a_code_in_unicode_digits_is_no_smtp_code_and_the_bounce_still_applies(
    client: Client, sent_delivery: Delivery
) -> None:
    payload = {"event_id": "e1", "event": "bounced", "provider_id": "<abc@example.com>", "code": "²²²"}
    assert post(client, payload).json() == {"result": "bounced"}
    sent_delivery.refresh_from_db()
    assert sent_delivery.status == Status.FAILED
    assert sent_delivery.attempt_set.get().code is None
