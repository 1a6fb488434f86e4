"""Scratch PostgreSQL databases for benchmarks: each measurement starts from an empty database."""

from __future__ import annotations

import os
import uuid

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
