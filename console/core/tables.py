"""The console's one filterable-table pattern.

A django-filter ``FilterSet`` narrows a queryset, a django-tables2 ``Table`` renders it (or the page's own
template loop, where a page needs its own rows), and keyset (cursor) pagination pages through it without
``COUNT(*)`` or ``OFFSET``: page 10,000 of a million-row log costs what page 1 costs. Filters submit with
htmx and push their URL, so every view of a table is a bookmarkable link; sort and page links are real hrefs
that work without JavaScript. The markup is core/_filtered_table.html's partials.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import django_filters
import django_tables2 as tables
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, models
from django.db.models import Field, Model, Q, QuerySet
from django.forms import BoundField
from django.forms.widgets import CheckboxInput, FileInput, Input, Select, Widget
from django.http import HttpRequest, QueryDict
from django.utils import timezone

from console.core.inputs import MomentField, representable_time, whole_number

PAGE_SIZES = (25, 50, 100, 200)
# The piece of a table page that filters, sorting and paging swap (core/_filtered_table.html's partial).
TABLE_REGION = "core/_filtered_table.html#table-region"


class BadCursor(ValueError):
    """A cursor in the URL that this table did not write."""


def _encode(values: list[Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, datetime | date):
            return {"t": value.isoformat()}
        if isinstance(value, Decimal):
            return {"d": str(value)}
        return str(value)

    raw = json.dumps(values, default=default, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, columns: list[Field[Any, Any]]) -> list[Any]:
    """The values of a cursor, each checked against the column it is compared with.

    A cursor is only ever written by ``_encode``, but it travels in the URL: one edited by hand must not reach
    the database with a value the column cannot hold (a string for an id, 1e999, a time before year 1).
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(cursor) from exc
    if not isinstance(values, list) or len(values) != len(columns):
        raise BadCursor(cursor)
    try:
        return [_typed(value, column) for value, column in zip(values, columns, strict=True)]
    except (TypeError, ValueError, ArithmeticError, ValidationError) as exc:
        raise BadCursor(cursor) from exc


def _typed(value: Any, column: Field[Any, Any]) -> Any:
    """``value`` as ``column`` holds it; ValueError (or the parser's own error) when it cannot be."""
    if isinstance(column, models.DateTimeField | models.DateField):
        if not (isinstance(value, dict) and isinstance(value.get("t"), str)):
            raise ValueError("a time is written {'t': <ISO 8601>}")
        if isinstance(column, models.DateTimeField):
            moment = datetime.fromisoformat(value["t"])
            if settings.USE_TZ and timezone.is_naive(moment):
                raise ValueError("this console writes times with their offset")
            representable_time(moment)
            return moment
        return date.fromisoformat(value["t"])
    if isinstance(column, models.DecimalField):
        if not (isinstance(value, dict) and isinstance(value.get("d"), str)):
            raise ValueError("a decimal is written {'d': <digits>}")
        number = Decimal(value["d"])
        if not number.is_finite():
            raise ValueError("a decimal column holds finite numbers")
        return number
    if isinstance(column, models.IntegerField):
        low, high = connection.ops.integer_field_range(column.get_internal_type())
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError("an integer column holds integers")
        if (low is not None and value < low) or (high is not None and value > high):
            raise ValueError("out of the column's range")
        return value
    if isinstance(column, models.CharField | models.TextField):
        # PostgreSQL text cannot hold NUL; no value this console wrote has one.
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError("a text column holds text")
        return value
    return column.to_python(value)


def _columns(model: type[Model], ordering: Ordering) -> list[Field[Any, Any]]:
    """The model fields that ``ordering`` compares, following relations; a relation compares its target key."""
    columns = []
    for dotted in ordering.fields:
        current: type[Model] = model
        column: Any = None
        for part in dotted.split("__"):
            column = current._meta.get_field(part)
            if column.is_relation:
                current = column.related_model
        columns.append(column.target_field if column.is_relation else column)
    return columns


@dataclass(frozen=True)
class Ordering:
    """A sort order that keyset pagination can follow: a column, then the unique key as a tie-breaker."""

    field: str
    key: str
    descending: bool

    @property
    def fields(self) -> tuple[str, ...]:
        return (self.field,) if self.field == self.key else (self.field, self.key)

    def order_by(self, reverse: bool = False) -> list[str]:
        descending = self.descending != reverse
        return [("-" if descending else "") + name for name in self.fields]

    def after(self, values: list[Any], reverse: bool = False) -> Q:
        """Rows strictly past ``values`` in this order (or before them when ``reverse``)."""
        op = "lt" if self.descending != reverse else "gt"
        if len(self.fields) == 1:
            return Q(**{f"{self.field}__{op}": values[0]})
        first, second = self.fields
        return Q(**{f"{first}__{op}": values[0]}) | Q(**{first: values[0], f"{second}__{op}": values[1]})


@dataclass
class KeysetPage[M: Model]:
    rows: list[M]
    next_cursor: str | None
    prev_cursor: str | None
    per_page: int


def keyset_page[M: Model](
    queryset: QuerySet[M], ordering: Ordering, *, after: str | None, before: str | None, per_page: int
) -> KeysetPage[M]:
    """One page in ``ordering``: the rows after ``after`` (or before ``before``); never counts the table.

    Raises ``BadCursor`` for a cursor this console did not write, before any query runs.
    """
    columns = _columns(queryset.model, ordering)
    if before:
        values = _decode(before, columns)
        fetched = list(
            queryset.filter(ordering.after(values, reverse=True)).order_by(*ordering.order_by(True))[: per_page + 1]
        )
        has_more_before = len(fetched) > per_page
        rows = list(reversed(fetched[:per_page]))
        has_more_after = True
    else:
        qs = queryset
        if after:
            qs = qs.filter(ordering.after(_decode(after, columns)))
        fetched = list(qs.order_by(*ordering.order_by())[: per_page + 1])
        rows = fetched[:per_page]
        has_more_after = len(fetched) > per_page
        has_more_before = bool(after)

    def cursor_of(row: M) -> str:
        return _encode([_value(row, name) for name in ordering.fields])

    return KeysetPage(
        rows=rows,
        next_cursor=cursor_of(rows[-1]) if rows and has_more_after else None,
        prev_cursor=cursor_of(rows[0]) if rows and has_more_before else None,
        per_page=per_page,
    )


def _value(row: Model, dotted: str) -> Any:
    value: Any = row
    for part in dotted.split("__"):
        value = getattr(value, part)
    return value.pk if isinstance(value, Model) else value


class ConsoleTable(tables.Table):
    """Base for console tables: markup suited to htmx swaps; keyset code does the paging, not tables2."""

    class Meta:
        template_name = "core/_table.html"
        attrs = {"class": "table"}
        orderable = False


def plain_kind(widget: Widget) -> str:
    """How the filter form writes a field by hand: ``"select"``, ``"input"``, or ``""`` for its own template.

    Widget templates cost more than the query on a page of the audit log, so the form writes selects and
    text-like inputs itself; anything else (checkboxes, files, multiple choices) keeps its widget's template.
    """
    if isinstance(widget, Select):
        return "" if widget.allow_multiple_selected else "select"
    if isinstance(widget, Input) and not isinstance(widget, CheckboxInput | FileInput):
        return "input"
    return ""


@dataclass
class FilteredTable:
    filterset: django_filters.FilterSet
    # None where the page writes its rows from ``page.rows`` in its own template.
    table: ConsoleTable | None
    page: KeysetPage[Any]
    query: QueryDict
    sort_options: list[tuple[str, str]]
    sort: str
    error: str | None = None

    def link(self, **changes: str | None) -> str:
        """The current URL's query string with ``changes`` applied (``None`` removes a key)."""
        query = self.query.copy()
        for key, value in changes.items():
            query.pop(key, None)
            if value is not None:
                query[key] = value
        encoded = query.urlencode()
        return f"?{encoded}" if encoded else "?"

    @property
    def next_url(self) -> str | None:
        return self.link(after=self.page.next_cursor, before=None) if self.page.next_cursor else None

    @property
    def prev_url(self) -> str | None:
        return self.link(before=self.page.prev_cursor, after=None) if self.page.prev_cursor else None

    @property
    def first_url(self) -> str | None:
        return self.link(before=None, after=None) if self.page.prev_cursor else None

    def page_links(self) -> list[tuple[str, str, str]]:
        """(label, rel, href) of the pager's links, for the pages there are."""
        links = (
            ("First page", "", self.first_url),
            ("Previous page", "prev", self.prev_url),
            ("Next page", "next", self.next_url),
        )
        return [(label, rel, href) for label, rel, href in links if href]

    def filter_fields(self) -> list[tuple[BoundField, str]]:
        """Each field of the filter form with its ``plain_kind``."""
        return [(field, plain_kind(field.field.widget)) for field in self.filterset.form]

    def sort_links(self) -> list[tuple[str, str, bool]]:
        return [
            (label, self.link(sort=value, after=None, before=None), value == self.sort)
            for value, label in self.sort_options
        ]


def filtered_table(
    request: HttpRequest,
    *,
    queryset: QuerySet[Any],
    filterset_class: type[django_filters.FilterSet],
    table_class: type[ConsoleTable] | None,
    orderings: dict[str, tuple[str, Ordering]],
    default_sort: str,
    per_page: int = 50,
) -> FilteredTable:
    """Filter, order and page ``queryset`` from the request's query string.

    ``table_class`` renders the rows; None when the page's template writes them from ``ft.page.rows``.
    ``orderings`` maps a ``sort`` value to (label, Ordering); only these orders are offered, because each
    needs an index for keyset paging to stay fast. Invalid filters leave the table empty and the bound
    filter form carries the errors; a tampered cursor restarts at the first page with a message.
    """
    query = request.GET.copy()
    sort = query.get("sort", default_sort)
    if sort not in orderings:
        sort = default_sort
    ordering = orderings[sort][1]
    size = whole_number(query.get("per_page")) or per_page
    size = size if size in PAGE_SIZES else per_page

    filterset = filterset_class(query, queryset=queryset, request=request)
    error = None
    filtered = filterset.qs if filterset.is_valid() else queryset.none()
    try:
        page = keyset_page(filtered, ordering, after=query.get("after"), before=query.get("before"), per_page=size)
    except BadCursor:
        error = "That page link is not valid any more; showing the first page."
        query.pop("after", None)
        query.pop("before", None)
        page = keyset_page(filtered, ordering, after=None, before=None, per_page=size)
    return FilteredTable(
        filterset=filterset,
        table=table_class(page.rows) if table_class else None,
        page=page,
        query=query,
        sort_options=[(value, label) for value, (label, _) in orderings.items()],
        sort=sort,
        error=error,
    )


class MomentFilter(django_filters.Filter):
    """A since/until filter that takes a day or a moment (see ``MomentField``); give it a ``method``."""

    field_class = MomentField
