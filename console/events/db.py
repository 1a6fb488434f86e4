"""Database expressions the event log needs that differ between PostgreSQL and SQLite."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import BigIntegerField, CharField, F, Func
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


@deconstructible(path="console.events.db.MetadataText")
class MetadataText(Func):
    """The text of one top-level key of an event's metadata, spelled the same way in indexes and queries.

    Django's key transforms compile on SQLite to an expression that lists JSON types from a set, in an order
    that changes from one process to the next; an index on it does not match the queries' expression.
    """

    output_field = CharField()
    arity = 1

    def __init__(self, key: str) -> None:
        if not key.isidentifier():
            raise ValueError(f"metadata key {key!r} must be an identifier")
        self.key = key
        super().__init__(F("metadata"))

    def as_sql(  # type: ignore[override]  # the SQL is fixed per vendor
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"JSON_EXTRACT({column}, '$.{self.key}')", tuple(params)

    def as_postgresql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> tuple[str, tuple[str | int, ...]]:
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} ->> '{self.key}')", tuple(params)

    def deconstruct(self) -> tuple[str, tuple[Any, ...], dict[str, Any]]:
        return "console.events.db.MetadataText", (self.key,), {}
