"""Bad environment values stop start-up with one clear line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.db import connection


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    # The standalone site's own settings, as a fresh shell would start them (not the test suite's).
    dropped = {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1", "DATABASE_URL": "mysqlx://nowhere"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DEBUG": "1", "CONSOLE_TASKS": "celery"}, "CONSOLE_TASKS"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
    ],
)
def test_it_names_the_bad_variable(env: dict[str, str], variable: str) -> None:
    result = run_check(**env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_it_starts_with_good_values() -> None:
    result = run_check(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com")
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own settings")
def test_sqlite_connections_are_tuned_for_a_writer_beside_readers(db: None) -> None:
    with connection.cursor() as cursor:
        answers = {}
        for pragma in ("journal_mode", "synchronous", "wal_autocheckpoint", "cache_size"):
            cursor.execute(f"PRAGMA {pragma}")
            answers[pragma] = cursor.fetchone()[0]
    assert answers == {"journal_mode": "wal", "synchronous": 1, "wal_autocheckpoint": 10000, "cache_size": -20000}
