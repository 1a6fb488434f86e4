"""Bulk upsert of read-model rows, the statement built once per model instead of once per value.

``bulk_create(update_conflicts=True)`` compiles every value of every row through the ORM, which is most of
a projection batch's time. A read model's columns are fixed, so the statement is built once per model and
the values are prepared by each field's own ``get_db_prep_save``: the rows stored are the ones
``bulk_create`` would store. PostgreSQL gets one array per column (``UNNEST``: a short statement whatever the
batch size); SQLite a multi-row ``VALUES``. Fields that cannot travel in an array go through the ORM.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any, cast

from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.base.base import BaseDatabaseWrapper

type Column = models.Field[Any, Any]

# SQLite allows 32,766 variables per statement; stay well below it.
_SQLITE_VARIABLES = 30_000

# Fields whose database value is the Python value itself when it has one of these exact types, so preparing
# it is skipped (only for these classes: a subclass may convert differently).
_AS_IS: dict[type[Column], tuple[type, ...]] = {
    **dict.fromkeys(
        (
            models.IntegerField,
            models.BigIntegerField,
            models.SmallIntegerField,
            models.PositiveIntegerField,
            models.PositiveBigIntegerField,
            models.PositiveSmallIntegerField,
        ),
        (int,),
    ),
    models.CharField: (str,),
    models.TextField: (str,),
    models.BooleanField: (bool,),
}


def _column(field: Column, rows: Sequence[models.Model], connection: BaseDatabaseWrapper) -> list[Any]:
    values = [getattr(row, field.attname) for row in rows]
    as_is = _AS_IS.get(type(field))
    if as_is is not None and all(type(value) in as_is for value in values):
        return values
    return [field.get_db_prep_save(value, connection) for value in values]


def _sql_type(field: Column, connection: BaseDatabaseWrapper) -> str | None:
    """The column's array element type (no length: values are checked by the table), or None if it has none."""
    target = field.target_field if isinstance(field, models.ForeignKey) else field
    if hasattr(field, "get_placeholder_sql") or target.get_internal_type() not in connection.data_types:
        return None
    db_type = field.db_type(connection)
    return None if db_type is None else db_type.split("(")[0]


@cache
def _statement(model: type[models.Model], unique: tuple[str, ...], alias: str) -> tuple[str, list[Column]] | None:
    """(SQL with one placeholder per column or per value, the fields in column order); None: use the ORM."""
    connection = connections[alias]
    # The auto-incremented key is the database's to assign; every other column is written.
    fields: list[Column] = [field for field in model._meta.concrete_fields if field is not model._meta.auto_field]
    quote = connection.ops.quote_name
    column = {field.name: quote(cast(str, field.column)) for field in fields}  # concrete: always a column
    columns = ", ".join(column.values())
    conflict = ", ".join(column[name] for name in unique)
    updates = ", ".join(f"{column[name]} = EXCLUDED.{column[name]}" for name in column if name not in unique)
    table = quote(model._meta.db_table)
    tail = f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    if connection.vendor != "postgresql":
        return f"INSERT INTO {table} ({columns}) VALUES {{values}} {tail}", fields
    # As Django's own UNNEST insert: only standard column types, and no per-value placeholders.
    types = [_sql_type(field, connection) for field in fields]
    if None in types:
        return None
    arrays = ", ".join(f"(%s)::{sql_type}[]" for sql_type in types)
    return f"INSERT INTO {table} ({columns}) SELECT * FROM UNNEST({arrays}) {tail}", fields


def upsert(model: type[models.Model], rows: Sequence[models.Model], *, unique: tuple[str, ...]) -> None:
    """Insert ``rows``, or update every other column of the rows that already exist under ``unique``."""
    if not rows:
        return
    # The wrapper itself, not the thread-local proxy: it is asked once per value.
    connection = connections[DEFAULT_DB_ALIAS]
    prepared = _statement(model, unique, DEFAULT_DB_ALIAS)
    if prepared is None:
        names = [f.name for f in model._meta.concrete_fields if not f.primary_key and f.name not in unique]
        model._base_manager.bulk_create(rows, update_conflicts=True, unique_fields=unique, update_fields=names)
        return
    sql, fields = prepared
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql, [_column(field, rows, connection) for field in fields])
            return
        placeholder = "(" + ", ".join(["%s"] * len(fields)) + ")"
        per_statement = max(1, _SQLITE_VARIABLES // len(fields))
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            columns = [_column(field, chunk, connection) for field in fields]
            params = [value for row in zip(*columns, strict=True) for value in row]
            cursor.execute(sql.format(values=", ".join([placeholder] * len(chunk))), params)
