"""Webhooks: signed CloudEvents out of the log, retries with backoff, disabling, SSRF guard, pages."""

from __future__ import annotations

import asyncio
import ipaddress
import re
import shutil
import socket
import ssl
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.events.models import Checkpoint, Event, WebhookDelivery, WebhookEndpoint
from console.events.pipeline import emit
from console.events.subscriptions import catch_up
from console.events.webhook_sender import claim_due, deliver_due, post, retry_delay, sign
from console.events.webhook_urls import UnsafeURL, check_url
from tests.events.conftest import Receiver, StartReceiver
from tests.events.conftest import publish as _publish


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


@pytest.mark.parametrize(
    "url",
    [
        "http://[::ffff:10.0.0.1]/hook",  # IPv4-mapped
        "http://[::ffff:169.254.169.254]/hook",
        "http://[::127.0.0.1]/hook",  # IPv4-compatible
        "http://[::c0a8:101]/hook",
        "http://[64:ff9b::7f00:1]/hook",  # NAT64, well-known prefix
        "http://[64:ff9b::a9fe:a9fe]/hook",
        "http://[64:ff9b:1::808:808]/hook",  # NAT64, local-use prefix: never public
        "http://[2002:7f00:1::]/hook",  # 6to4
        "http://[2002:c0a8:101::1]/hook",
        "http://[2002:808:808::1]/hook",  # 6to4 of a public address: 6to4 is never public
    ],
)
def test_it_refuses_ipv6_forms_of_private_ipv4_addresses(url: str) -> None:
    with pytest.raises(UnsafeURL, match="private or reserved"):
        check_url(url)


@pytest.mark.parametrize("url", ["http://[::ffff:8.8.8.8]/hook", "http://[64:ff9b::808:808]/hook"])
def test_ipv6_forms_of_public_ipv4_addresses_pass(url: str) -> None:
    (address,) = check_url(url).addresses
    assert address == ipaddress.ip_address(httpx.URL(url).host)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("https://example.com:99999/hook", "port must be between 1 and 65535"),
        ("https://example.com:0/hook", "port must be between 1 and 65535"),
        ("http:///hook", "with a host name"),
        ("http://:80/hook", "with a host name"),
        ("http://[::1/hook", "not a valid URL"),
    ],
)
def test_it_refuses_malformed_urls(url: str, error: str) -> None:
    with pytest.raises(UnsafeURL, match=error):
        check_url(url)


class Resolver:
    """Stands in for DNS: each name answers its lists of addresses in turn, repeating the last."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = answers
        self.asked: list[str] = []
        self._real = socket.getaddrinfo

    def getaddrinfo(self, host: str | bytes | None, port: Any, *args: Any, **kwargs: Any) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self._real(host, port, *args, **kwargs)
        self.asked.append(name)
        turns = self.answers[name]
        addresses = turns.pop(0) if len(turns) > 1 else turns[0]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))
            for address in addresses
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, list[list[str]]]], Resolver]:
    """The resolver the code calls (``socket.getaddrinfo``), answering for the names a test gives."""

    def install(answers: dict[str, list[list[str]]]) -> Resolver:
        resolver = Resolver(answers)
        monkeypatch.setattr(socket, "getaddrinfo", resolver.getaddrinfo)
        return resolver

    return install


def test_a_name_is_refused_when_any_of_its_addresses_is_private(dns: Callable[..., Resolver]) -> None:
    dns({"mixed.test": [["93.184.215.14", "64:ff9b::a00:1"]]})
    with pytest.raises(UnsafeURL, match=r"mixed.test resolves to 64:ff9b::a00:1, which is a private"):
        check_url("https://mixed.test/hook")


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
    # Nothing is delivered twice: the checkpoint has moved past the event (the subscriber now reads only the
    # attempt's own, unpublished event) and the delivery is done.
    catch_up("events.webhooks")
    assert WebhookDelivery.objects.count() == 1
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


def _point(endpoint: WebhookEndpoint, receiver: Receiver, host: str) -> None:
    """Send the endpoint to ``host`` on the receiver's port."""
    endpoint.url = receiver.url.replace("127.0.0.1", host)
    endpoint.save()


def test_a_rebinding_name_delivers_nothing_to_loopback(
    endpoint: WebhookEndpoint, receiver: Receiver, dns: Callable[..., Resolver], settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_TIMEOUT_SECONDS": 1}
    # Checked while public; every later answer is the receiver's loopback address. The public address is
    # really connected to: nothing there answers HTTP on the receiver's port, so the attempt fails in 1 s.
    resolver = dns({"rebind.test": [["2606:4700:4700::1111"], ["127.0.0.1"]]})
    _point(endpoint, receiver, "rebind.test")
    _publish()
    deliver_due()
    assert receiver.received == []
    assert resolver.asked == ["rebind.test"]
    assert WebhookDelivery.objects.get().attempts == 1


def test_it_connects_to_the_address_it_checked(
    endpoint: WebhookEndpoint, receiver: Receiver, start_receiver: StartReceiver, dns: Callable[..., Resolver]
) -> None:
    port = httpx.URL(receiver.url).port
    elsewhere = start_receiver("127.0.0.2", port=port)
    dns({"hooks.test": [["127.0.0.1"], ["127.0.0.2"]]})
    _point(endpoint, receiver, "hooks.test")
    _publish()
    assert deliver_due() == {"sent": 1, "failed": 0}
    (got,) = receiver.received
    assert got["verified"] and got["headers"]["host"] == f"hooks.test:{port}"
    assert elsewhere.received == []


def test_it_tries_the_next_checked_address_when_one_refuses(
    endpoint: WebhookEndpoint, receiver: Receiver, dns: Callable[..., Resolver]
) -> None:
    resolver = dns({"hooks.test": [["127.0.0.2", "127.0.0.1"], ["127.0.0.3"]]})
    _point(endpoint, receiver, "hooks.test")
    _publish()
    assert deliver_due() == {"sent": 1, "failed": 0}
    assert len(receiver.received) == 1 and resolver.asked == ["hooks.test"]


HUGE = 64 * 1024 * 1024


def _huge(written: list[int]) -> Callable[[BaseHTTPRequestHandler], None]:
    """Answers 200 with a 64 MiB body, counting the bytes it gets onto the wire before the sender hangs up."""
    chunk = b"x" * 65536

    def respond(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("content-length", str(HUGE))
        handler.end_headers()
        try:
            for _ in range(HUGE // len(chunk)):
                handler.wfile.write(chunk)
                written.append(len(chunk))
        except OSError:
            return

    return respond


def _drip(answer: bytes, *, head: bytes = b"") -> Callable[[BaseHTTPRequestHandler], None]:
    """Writes ``head`` at once, then ``answer`` a byte a second until the sender hangs up."""

    def respond(handler: BaseHTTPRequestHandler) -> None:
        try:
            handler.wfile.write(head)
            for byte in answer:
                handler.wfile.write(bytes([byte]))
                time.sleep(1)
        except OSError:
            return

    return respond


def test_an_oversized_answer_is_read_up_to_the_cap_and_no_further(
    endpoint: WebhookEndpoint, receiver: Receiver
) -> None:
    written: list[int] = []
    receiver.respond = _huge(written)
    _publish()
    tracemalloc.start()
    try:
        assert deliver_due() == {"sent": 1, "failed": 0}
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert WebhookDelivery.objects.get().last_response == "x" * 65536 + "\n[cut after 65536 bytes]"
    # Reading the whole body would take 64 MiB; what got onto the wire is what the kernel buffers held.
    assert peak < 8 * 1024 * 1024
    assert sum(written) < HUGE // 4


def test_it_reads_one_network_chunk_past_the_cap_at_most(receiver: Receiver, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_RESPONSE_MAX_BYTES": 1000}
    receiver.respond = _huge([])
    answer = post(check_url(receiver.url), content=b"{}", headers={}, tls=ssl.create_default_context())
    assert answer.status_code == 200 and answer.body == b"x" * 1000
    assert 1000 < answer.received <= 1000 + 65536
    assert answer.cut == "cut after 1000 bytes"


def test_it_posts_from_a_thread_that_already_runs_an_event_loop(receiver: Receiver, settings: Any) -> None:
    # An inline task backend under an async server (or a test driving a browser) calls the sender this way.
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True}

    async def inside_a_loop() -> int:
        return post(check_url(receiver.url), content=b"{}", headers={}, tls=ssl.create_default_context()).status_code

    # A thread of its own: the test's thread may run a loop already (Playwright's, in a whole-suite run).
    with ThreadPoolExecutor(max_workers=1) as pool:
        status = pool.submit(lambda: asyncio.run(inside_a_loop())).result()
    assert status == 401  # the receiver's answer to an unsigned request
    assert len(receiver.received) == 1


def test_an_answer_dripping_in_after_its_status_is_cut_off_at_the_deadline(
    endpoint: WebhookEndpoint, receiver: Receiver, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_TIMEOUT_SECONDS": 2}
    receiver.respond = _drip(b"x" * 60, head=b"HTTP/1.1 200 OK\r\ncontent-length: 60\r\n\r\n")
    _publish()
    started = time.monotonic()
    # The receiver said 200: the event was delivered, however long its answer.
    assert deliver_due() == {"sent": 1, "failed": 0}
    assert time.monotonic() - started < 3.5
    body, note = WebhookDelivery.objects.get().last_response.split("\n")
    assert 1 <= len(body) <= 3 and set(body) == {"x"}
    assert note == "[cut off: still arriving at the deadline]"


def test_a_status_line_dripping_in_is_a_failed_attempt_at_the_deadline(
    endpoint: WebhookEndpoint, receiver: Receiver, settings: Any
) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_TIMEOUT_SECONDS": 2}
    receiver.respond = _drip(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    _publish()
    started = time.monotonic()
    assert deliver_due() == {"sent": 0, "failed": 1}
    assert time.monotonic() - started < 3.5
    delivery = WebhookDelivery.objects.get()
    assert delivery.status == "retrying" and delivery.last_status_code is None
    assert delivery.last_error == "No answer within 2 s (WEBHOOK_TIMEOUT_SECONDS)."


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test CA (``ca.pem``) and a certificate it signed for hooks.test (``hooks.pem``, ``hooks.key``)."""
    where = tmp_path_factory.mktemp("tls")
    curve = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    # Python 3.13 verifies strictly: a CA needs its key usage, a leaf its key identifiers.
    _openssl(
        "req", "-x509", *curve, "-keyout", where / "ca.key", "-out", where / "ca.pem", "-subj", "/CN=Test CA",
        "-addext", "keyUsage=critical,keyCertSign",
    )  # fmt: skip
    _openssl("req", *curve, "-keyout", where / "hooks.key", "-out", where / "hooks.csr", "-subj", "/CN=hooks.test")
    (where / "ext.cnf").write_text(
        "subjectAltName=DNS:hooks.test\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\nsubjectKeyIdentifier=hash\n"
    )
    _openssl(
        "x509", "-req", "-in", where / "hooks.csr", "-CA", where / "ca.pem", "-CAkey", where / "ca.key",
        "-CAcreateserial", "-out", where / "hooks.pem", "-days", "2", "-extfile", where / "ext.cnf",
    )  # fmt: skip
    return where


@pytest.fixture
def https_receiver(
    endpoint: WebhookEndpoint, start_receiver: StartReceiver, certificates: Path, monkeypatch: pytest.MonkeyPatch
) -> Receiver:
    """A receiver speaking TLS with the hooks.test certificate, which the sender trusts through SSL_CERT_FILE."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(certificates / "hooks.pem", certificates / "hooks.key")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificates / "ca.pem"))
    started = start_receiver(tls=tls)
    started.secret = endpoint.secret
    return started


@pytest.mark.skipif(not shutil.which("openssl"), reason="makes its certificates with the openssl command")
def test_https_keeps_the_name_for_sni_and_the_certificate_while_connecting_to_the_checked_address(
    endpoint: WebhookEndpoint, https_receiver: Receiver, dns: Callable[..., Resolver]
) -> None:
    resolver = dns({"hooks.test": [["127.0.0.1"], ["127.0.0.2"]]})
    _point(endpoint, https_receiver, "hooks.test")
    _publish()
    assert deliver_due() == {"sent": 1, "failed": 0}
    (got,) = https_receiver.received
    assert got["verified"] and got["headers"]["host"] == f"hooks.test:{httpx.URL(https_receiver.url).port}"
    assert https_receiver.server_names == ["hooks.test"]
    assert resolver.asked == ["hooks.test"]


@pytest.mark.skipif(not shutil.which("openssl"), reason="makes its certificates with the openssl command")
def test_https_refuses_a_certificate_for_another_name(
    endpoint: WebhookEndpoint, https_receiver: Receiver, dns: Callable[..., Resolver]
) -> None:
    dns({"other.test": [["127.0.0.1"]]})
    _point(endpoint, https_receiver, "other.test")
    _publish()
    assert deliver_due() == {"sent": 0, "failed": 1}
    assert "CERTIFICATE_VERIFY_FAILED" in WebhookDelivery.objects.get().last_error
    assert https_receiver.received == []


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
    assert response.status_code == 200 and f'href="/webhooks/{endpoint.pk}/"' in response.content.decode()
    assert endpoint.event_types == ["test.published"] and endpoint.secret.startswith("whsec_")
    created = Event.objects.get(type="webhook.created")
    assert created.actor == operator and created.data["name"] == "CRM"
    page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
    assert "Nothing delivered to this endpoint yet." in page


BAD_URLS = [
    ("ftp://example.com/hook", "http:// or https://"),
    ("http://127.0.0.1/hook", "private or reserved"),
    ("https://example.com:99999/hook", "port must be between 1 and 65535, not 99999"),
    ("https://example.com:0/hook", "port must be between 1 and 65535, not 0"),
    ("http://:80/hook", "Enter a valid URL"),
    ("http://[::ffff:192.168.0.1]/hook", "private or reserved"),
    ("http://[::10.0.0.1]/hook", "private or reserved"),
    ("http://[64:ff9b::a9fe:a9fe]/hook", "private or reserved"),
    ("http://[2002:7f00:1::]/hook", "private or reserved"),
]


@pytest.mark.parametrize(("url", "error"), BAD_URLS)
def test_bad_urls_are_refused_with_a_form_error(client: Client, operator: User, url: str, error: str) -> None:
    client.force_login(operator)
    response = client.post("/webhooks/new/", {"name": "x", "url": url})
    assert response.status_code == 200
    assert error in response.content.decode()
    assert 'class="field-error"' in response.content.decode()
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(("url", "error"), BAD_URLS)
def test_editing_to_a_bad_url_is_refused_with_a_form_error(
    client: Client, operator: User, endpoint: WebhookEndpoint, settings: Any, url: str, error: str
) -> None:
    settings.CONSOLE_EVENTS = {}
    client.force_login(operator)
    response = client.post(f"/webhooks/{endpoint.pk}/edit/", {"name": "x", "url": url})
    assert response.status_code == 200
    assert error in response.content.decode() and 'class="field-error"' in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.name == "Receiver"


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
