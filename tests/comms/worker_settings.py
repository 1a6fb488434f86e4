"""Settings for a test worker process: the console's own, with the mailer pointed at the test SMTP server."""

from __future__ import annotations

import os
from typing import Any

from console.settings import *  # noqa: F403


def _mailers() -> Any:
    port = int(os.environ["COMMS_TEST_SMTP_PORT"])
    options = {"host": "127.0.0.1", "port": port, "timeout": 10}
    return {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": options}}


MAILERS = _mailers()
CONSOLE_COMMS = {"ALERT_EMAILS": ["ops@example.com"], "BACKOFF_BASE_SECONDS": 0.001}
