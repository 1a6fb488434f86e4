"""Settings of bench_comms' worker scenario: the standalone site on PostgreSQL + Redis, mail to the bench's relay.

DATABASE_URL, REDIS_URL and CONSOLE_HUEY_NAME come from the environment the benchmark sets; the sender and
every ``run_huey`` worker it starts read the same ones.
"""

from __future__ import annotations

import os

from console.settings import *  # noqa: F403

_relay = {"host": "127.0.0.1", "port": int(os.environ["BENCH_SMTP_PORT"]), "timeout": 30}
# Through globals(): the site's MAILERS is typed for string options, the relay's port is a number.
globals()["MAILERS"] = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": _relay}}
CONSOLE_COMMS = {"BATCH_SIZE": 100}
