"""Event types and helpers the events tests share."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connection

from console.events import subscriptions
from console.events.catalog import Metric, declare

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
    """A webhook receiver on a real socket that verifies Standard Webhooks signatures."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def verify(self, headers: Any, body: bytes) -> bool:
        key = base64.b64decode(self.secret.removeprefix("whsec_"))
        signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
        expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        offered = [part.removeprefix("v1,") for part in headers["webhook-signature"].split() if part.startswith("v1,")]
        return any(hmac.compare_digest(expected, candidate) for candidate in offered)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            verified = state.verify(self.headers, body)
            state.received.append({"headers": dict(self.headers), "body": json.loads(body), "verified": verified})
            status = state.answers.pop(0) if state.answers else (200 if verified else 401)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)
