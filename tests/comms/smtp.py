"""A real SMTP server (aiosmtpd) that answers per recipient from a script and records what it accepted."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from typing import Any

import django
import pytest
from aiosmtpd.controller import Controller

# Script entries: an SMTP reply such as "450 4.2.0 Try later" / "550 5.1.1 No such user" / "421 4.3.2 Bye",
# or DROP (close the connection at RCPT), or ACCEPT_DROP (take the message at DATA, then close before
# answering: the client cannot know it was accepted).
DROP = "DROP"
ACCEPT_DROP = "ACCEPT_DROP"
# Take the message at DATA, then keep the client waiting for the reply (a worker killed meanwhile).
ACCEPT_HANG = "ACCEPT_HANG"


@dataclass
class Accepted:
    sender: str
    recipients: list[str]
    message: Message
    # The client's (host, port): messages with the same peer came over the same connection.
    peer: Any = None


@dataclass
class ScriptedHandler:
    scripts: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    data_scripts: dict[str, deque[str]] = field(default_factory=lambda: defaultdict(deque))
    accepted: list[Accepted] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, recipient: str, *replies: str) -> None:
        with self.lock:
            self.scripts[recipient.lower()].extend(replies)

    def script_data(self, recipient: str, *replies: str) -> None:
        with self.lock:
            self.data_scripts[recipient.lower()].extend(replies)

    def reset(self) -> None:
        with self.lock:
            self.scripts.clear()
            self.data_scripts.clear()
            self.accepted.clear()

    def _next(self, table: dict[str, deque[str]], recipient: str) -> str:
        with self.lock:
            queue = table.get(recipient.lower())
            return queue.popleft() if queue else "250 OK"

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        reply = self._next(self.scripts, address)
        if reply == DROP:
            server.transport.close()
            return "421 4.4.2 connection dropped"
        if reply.startswith("250"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = "250 OK"
        for recipient in envelope.rcpt_tos:
            scripted = self._next(self.data_scripts, recipient)
            if scripted != "250 OK":
                reply = scripted
        if reply in ("250 OK", ACCEPT_DROP, ACCEPT_HANG):
            with self.lock:
                self.accepted.append(
                    Accepted(
                        envelope.mail_from,
                        list(envelope.rcpt_tos),
                        message_from_bytes(envelope.content),
                        peer=session.peer,
                    )
                )
        if reply == ACCEPT_DROP:
            server.transport.close()
            return "250 OK"
        if reply == ACCEPT_HANG:
            await asyncio.sleep(10)
            return "250 OK"
        return reply

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [a.message for a in self.accepted if address in a.recipients]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPServer:
    def __init__(self) -> None:
        self.handler = ScriptedHandler()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def restart(self) -> None:
        """Stop (dropping every open connection) and listen again on the same port."""
        self.controller.stop()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def mail_settings(self) -> dict[str, Any]:
        return mail_settings(self.port)


def mail_settings(port: int) -> dict[str, Any]:
    """Django settings that send mail to the SMTP server on ``port``: MAILERS on 6.1, EMAIL_* on 6.0."""
    if django.VERSION >= (6, 1):
        options = {"host": "127.0.0.1", "port": port, "timeout": 10}
        return {"MAILERS": {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}}}
    return {
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": port,
        "EMAIL_TIMEOUT": 10,
    }


@pytest.fixture
def smtp_for_worker(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[SMTPServer]:
    """A scripted SMTP server that a worker process started after this fixture sends to (and so do we)."""
    server = SMTPServer()
    server.start()
    monkeypatch.setenv("DJANGO_SETTINGS_MODULE", "tests.comms.worker_settings")
    monkeypatch.setenv("COMMS_TEST_SMTP_PORT", str(server.port))
    for name, value in server.mail_settings().items():
        setattr(settings, name, value)
    settings.CONSOLE_COMMS = {"ALERT_EMAILS": ["ops@example.com"], "BACKOFF_BASE_SECONDS": 0.001}
    yield server
    server.stop()
