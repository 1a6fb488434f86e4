"""Database expressions the event log needs that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BigIntegerField, Func
from django.db.models.sql.compiler import SQLCompiler
from django.utils.deconstruct import deconstructible


@deconstructible(path="console.events.db.CurrentTransactionId")
class CurrentTransactionId(Func):
    """The writing transaction's id on PostgreSQL (xid8 as bigint), NULL elsewhere.

    The gapless reader orders by it: a row becomes visible when its transaction commits, and every
    transaction older than the oldest one still running has committed or aborted.
    """

    output_field = BigIntegerField()
    arity = 0

    def as_sql(  # type: ignore[override]  # takes no function/template: the SQL is fixed per vendor
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        return "NULL", ()

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        return "(pg_current_xact_id()::text::bigint)", ()
