"""Event types and helpers the events tests share."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from console.events import subscriptions
from console.events.catalog import Metric, declare
from console.events.models import Checkpoint, Event, Seal, WebhookEndpoint
from console.events.pipeline import emit
from console.events.seal import SEALER, unsealed_count
from console.events.services import webhook_create
from console.events.subscriptions import catch_up

PING = declare("test.ping", description="A test event.", required={"n"}, optional={"note"})
SEEN = declare("test.seen", description="A subscriber saw a ping.", required={"n"})

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="concurrent transactions committing out of order need PostgreSQL; SQLite serializes every writer",
)


@pytest.fixture
def no_subscribers() -> Iterator[None]:
    """Only the subscribers a test registers itself."""
    saved = dict(subscriptions._subscribers)
    subscriptions._subscribers.clear()
    yield
    subscriptions._subscribers.clear()
    subscriptions._subscribers.update(saved)


PUBLISHED = declare(
    "test.published",
    description="A published test event.",
    required={"n"},
    level="warning",
    publish=True,
    metrics=[
        Metric(
            "console_test_published_total",
            "counter",
            "Published test events.",
            labels=("colour",),
            allowed={"colour": ("red", "blue")},
        )
    ],
    optional={"colour"},
)


@dataclass
class Receiver:
    """A webhook receiver on a real socket that verifies Standard Webhooks signatures.

    ``respond``, when set, writes the whole answer itself (slow, huge, malformed ones).
    """

    secret: str = ""
    answers: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""
    respond: Callable[[BaseHTTPRequestHandler], None] | None = None
    # Server names TLS clients asked for (SNI), when the receiver speaks https.
    server_names: list[str | None] = field(default_factory=list)

    def verify(self, headers: Any, body: bytes, secret: str | None = None) -> bool:
        """Whether one of the signatures is ``secret``'s (the receiver's own by default), as a receiver checks."""
        if "webhook-signature" not in headers:
            return False
        key = base64.b64decode((secret or self.secret).removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [part.removeprefix("v1,") for part in headers["webhook-signature"].split() if part.startswith("v1,")]
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)


StartReceiver = Callable[..., Receiver]


@pytest.fixture
def start_receiver() -> Iterator[StartReceiver]:
    """Starts receivers on real sockets: ``start_receiver("127.0.0.2", port=8080, tls=context)``; all stop after."""
    running: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def start(host: str = "127.0.0.1", *, port: int = 0, tls: ssl.SSLContext | None = None) -> Receiver:
        state = Receiver()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                verified = state.verify(self.headers, body)
                state.received.append(
                    {"headers": dict(self.headers), "body": json.loads(body), "raw": body, "verified": verified}
                )
                if state.respond is not None:
                    state.respond(self)
                    return
                status = state.answers.pop(0) if state.answers else (200 if verified else 401)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer((host, port), Handler)
        scheme = "http"
        if tls is not None:
            tls.sni_callback = lambda _socket, name, _context: state.server_names.append(name)
            server.socket = tls.wrap_socket(server.socket, server_side=True)
            scheme = "https"
        state.url = f"{scheme}://{host}:{server.server_address[1]}/hook"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return state

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def receiver(start_receiver: StartReceiver) -> Receiver:
    return start_receiver()


@pytest.fixture
def allow_private(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"WEBHOOK_ALLOW_PRIVATE": True, "WEBHOOK_TIMEOUT_SECONDS": 5}


@pytest.fixture
def endpoint(db: None, allow_private: None, receiver: Receiver, operator: User) -> WebhookEndpoint:
    """An endpoint of every published type at ``receiver``, which holds its secret."""
    created = webhook_create(actor=operator, name="Receiver", url=receiver.url, event_types=[])
    receiver.secret = created.secret
    return created


def publish(n: int = 1) -> Event:
    """Emit a published event and let the webhook publisher queue its deliveries."""
    event = emit(PUBLISHED, n=n, colour="red")
    assert event is not None
    catch_up("events.webhooks")
    return event


@pytest.fixture
def immediate(settings: Any) -> None:
    """Tasks run as they are enqueued: an operation started in a test runs when its transaction commits."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


def seal_all(timeout: float = 10.0) -> None:
    """Let the sealer seal every event. On a PostgreSQL server shared with other work the gapless reader
    may hold back for a moment (a transaction it cannot place yet), so this retries until nothing is left."""
    deadline = time.monotonic() + timeout
    while True:
        subscriptions.catch_up(SEALER)
        paused = Checkpoint.objects.filter(name=SEALER, status=Checkpoint.Status.PAUSED).exists()
        if paused or unsealed_count(Seal.objects.order_by("-pk").first()) == 0 or time.monotonic() > deadline:
            return
        time.sleep(0.05)
