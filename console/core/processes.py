"""Starting child processes of this site (job runs, workers) that see what the parent sees."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.db import connection


def manage_py() -> Path:
    return Path(settings.BASE_DIR) / "manage.py"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``manage.py``: same settings, same database (even a test one), same queue."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "console.settings"),
            "CONSOLE_DATABASE_NAME": str(connection.settings_dict["NAME"]),
            "CONSOLE_HUEY_NAME": settings.HUEY_NAME,
            "CONSOLE_TASKS": settings.CONSOLE_TASKS,
            "SECRET_KEY": settings.SECRET_KEY,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if getattr(settings, "TESTING", False):
        env["CONSOLE_TESTING"] = "1"
    env.update(extra)
    return env


def manage_argv(command: str, *args: str) -> list[str]:
    """argv for ``python manage.py <command> <args>`` with this interpreter: never a shell string."""
    return [sys.executable, "-u", str(manage_py()), command, *args]
