"""Settings for a test worker process: the test suite's own, with mail sent to the test SMTP server."""

from __future__ import annotations

import os

from tests.comms.smtp import mail_settings
from tests.settings import *  # noqa: F403

globals().update(mail_settings(int(os.environ["COMMS_TEST_SMTP_PORT"])))
CONSOLE_COMMS = {"ALERT_EMAILS": ["ops@example.com"], "BACKOFF_BASE_SECONDS": 0.001}
