from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from console.comms import sending
from tests.comms.smtp import SMTPServer


@pytest.fixture(autouse=True)
def fresh_dispatch_window() -> None:
    """Each test starts a new coalescing window, whatever the test before it dispatched."""
    sending.window.reset()


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def smtp(smtp_server: SMTPServer, settings: Any) -> Iterator[SMTPServer]:
    """The scripted SMTP server, with the default mailer pointed at it and alerts addressed to ops."""
    smtp_server.handler.reset()
    for name, value in smtp_server.mail_settings().items():
        setattr(settings, name, value)
    settings.CONSOLE_COMMS = {"ALERT_EMAILS": ["ops@example.com"], "BACKOFF_BASE_SECONDS": 0.001}
    yield smtp_server
    smtp_server.handler.reset()


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Records the delivery ids each dispatch would enqueue, instead of enqueueing them."""
    calls: list[list[int]] = []
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: calls.append(list(ids)))
    monkeypatch.setattr(sending, "dispatch_soon", lambda ids: calls.append(list(ids)))
    return calls


@pytest.fixture
def inline_tasks(settings: Any) -> None:
    """Tasks run where they are enqueued (after commit), so a test follows a message end to end."""
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
