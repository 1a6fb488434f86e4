"""Scratch PostgreSQL databases for benchmarks: each measurement starts from an empty database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

PG_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")


def create_database(prefix: str) -> str | None:
    """A new empty database on ``BENCH_DATABASE_URL``'s server, or None when there is no server to use."""
    try:
        import psycopg
    except ImportError:
        return None
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_URL, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error:
        return None
    return name


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(module: str, database: str | None) -> dict[str, Any]:
    """Run ``python -m bench.<module> child`` on PostgreSQL database ``database`` (SQLite when None), in a
    scratch var directory with DEBUG off; its last stdout line is the JSON result."""
    with tempfile.TemporaryDirectory(prefix=f"{module}-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CONSOLE_VAR_DIR": tmp,
            "CONSOLE_HUEY_NAME": module,
            "DEBUG": "0",
            "LOG_LEVEL": "ERROR",
        }
        env.pop("REDIS_URL", None)
        if database:
            env["DATABASE_URL"] = PG_URL
            env["CONSOLE_DATABASE_NAME"] = database
        else:
            env.pop("DATABASE_URL", None)
            env.pop("CONSOLE_DATABASE_NAME", None)
        root = Path(__file__).resolve().parent.parent
        args = [sys.executable, "-m", f"bench.{module}", "child"]
        done = subprocess.run(args, env=env, cwd=root, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{module} child failed:\n{done.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return parsed
