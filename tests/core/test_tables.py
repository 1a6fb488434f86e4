"""The filterable-table pattern: filters, keyset pages without COUNT(*), bookmarkable htmx URLs."""

from __future__ import annotations

import base64
import re

import django_filters
import django_tables2 as tables
import pytest
from django import forms
from django.contrib.auth.models import Group, User
from django.db import connection
from django.template.loader import render_to_string
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from console.core.tables import (
    BadCursor,
    ConsoleTable,
    FilteredTable,
    Ordering,
    filtered_table,
    keyset_page,
    plain_kind,
)
from tests.conftest import tidy_tags


class UserFilter(django_filters.FilterSet):
    username = django_filters.CharFilter(lookup_expr="startswith")
    joined_after = django_filters.DateFilter(field_name="date_joined", lookup_expr="date__gte")

    class Meta:
        model = User
        fields = ["username", "is_staff"]


class UserTable(ConsoleTable):
    username = tables.Column()

    class Meta(ConsoleTable.Meta):
        model = User
        fields = ["username", "is_staff"]


ORDERINGS = {
    "newest": ("Newest", Ordering("id", "id", descending=True)),
    "name": ("Name", Ordering("username", "id", descending=False)),
}


@pytest.fixture
def users(db: None) -> list[User]:
    return [User.objects.create(username=f"user{i:03d}", is_staff=i % 3 == 0) for i in range(120)]


def table(
    query: str,
    filterset_class: type[django_filters.FilterSet] = UserFilter,
    table_class: type[ConsoleTable] | None = UserTable,
) -> FilteredTable:
    request = RequestFactory().get("/t/" + query)
    return filtered_table(
        request,
        queryset=User.objects.all(),
        filterset_class=filterset_class,
        table_class=table_class,
        orderings=ORDERINGS,
        default_sort="newest",
        per_page=25,
    )


def test_it_pages_through_every_row_once_in_both_orders(users: list[User]) -> None:
    for sort in ORDERINGS:
        seen: list[str] = []
        query = f"?sort={sort}"
        while True:
            ft = table(query)
            seen.extend(row.username for row in ft.page.rows)
            if not ft.next_url:
                break
            query = ft.next_url
        assert len(seen) == 120 and len(set(seen)) == 120
        expected = sorted(seen, reverse=sort == "newest") if sort == "name" else seen
        assert seen == expected


def test_previous_page_returns_the_same_rows(users: list[User]) -> None:
    first = table("?sort=name")
    assert first.next_url
    second = table(first.next_url)
    assert second.prev_url
    back = table(second.prev_url)
    assert [u.pk for u in back.page.rows] == [u.pk for u in first.page.rows]


def test_it_filters_and_keeps_filters_in_page_links(users: list[User]) -> None:
    ft = table("?is_staff=true")
    assert all(row.is_staff for row in ft.page.rows)
    assert ft.next_url and "is_staff=true" in ft.next_url


def test_it_never_counts_the_table(users: list[User]) -> None:
    with CaptureQueriesContext(connection) as queries:
        ft = table("?sort=name")
        ft.next_url  # noqa: B018
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "COUNT(" not in sql
    assert "OFFSET" not in sql
    assert len(queries.captured_queries) == 1


def test_bad_filter_values_show_errors_and_no_rows(users: list[User]) -> None:
    ft = table("?joined_after=not-a-date")
    assert ft.page.rows == []
    assert "joined_after" in ft.filterset.errors


def test_a_tampered_cursor_restarts_at_the_first_page(users: list[User]) -> None:
    ft = table("?after=garbage!!")
    assert ft.error
    assert len(ft.page.rows) == 25
    with pytest.raises(BadCursor):
        keyset_page(User.objects.all(), ORDERINGS["newest"][1], after="WzEsMl0", before=None, per_page=5)


@pytest.mark.urls("tests.core.table_urls")
def test_the_page_and_its_htmx_fragment(client: Client, users: list[User]) -> None:
    client.force_login(User.objects.create(username="zz-staff", is_staff=True))
    page = client.get("/users/?is_staff=true").content.decode()
    assert '<form class="filters"' in page and 'hx-push-url="true"' in page
    assert "user117" in page and "user118" not in page  # newest first, staff only
    assert 'rel="next"' in page and "?is_staff=true&amp;after=" in page

    fragment = client.get("/users/?username=user00", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="table-region"')
    assert "<form" not in fragment and "<html" not in fragment
    assert "user009" in fragment and "user010" not in fragment

    invalid = client.get("/users/?joined_after=31-31-2020").content.decode()
    assert "Enter a valid date." in invalid
    assert "Nothing matches these filters." in invalid


def test_a_cursor_whose_values_do_not_fit_the_columns_is_a_bad_cursor(users: list[User]) -> None:
    by_joined = Ordering("date_joined", "id", descending=True)
    with pytest.raises(BadCursor):
        keyset_page(User.objects.all(), by_joined, after="WzEsMl0", before=None, per_page=5)  # [1, 2]


BY_JOINED = Ordering("date_joined", "id", descending=True)
# Cursors edited by hand: base64url JSON that decodes, with values the columns cannot hold.
TAMPERED = {
    "a decimal that is not a number": ('[{"d":"x"}]', ORDERINGS["newest"][1]),
    "a number past the largest double": ("[1e999]", ORDERINGS["newest"][1]),
    "text for an id": ('["x"]', ORDERINGS["newest"][1]),
    "true for an id": ("[true]", ORDERINGS["newest"][1]),
    "an id past 64 bits": ("[18446744073709551616]", ORDERINGS["newest"][1]),
    "a number for a name": ("[5, 1]", ORDERINGS["name"][1]),
    "a name with a NUL": ('["a\\u0000", 1]', ORDERINGS["name"][1]),
    "a time whose UTC is before year 1": ('[{"t":"0001-01-01T00:00+01:00"},1]', BY_JOINED),
    "a time whose UTC is after year 9999": ('[{"t":"9999-12-31T23:59-01:00"},1]', BY_JOINED),
    "a time without its offset": ('[{"t":"2026-01-31T12:00"},1]', BY_JOINED),
    "a number for a time": ("[5,1]", BY_JOINED),
}


def b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("case", TAMPERED)
@pytest.mark.parametrize("direction", ["after", "before"])
def test_it_refuses_a_cursor_whose_values_the_columns_cannot_hold(users: list[User], case: str, direction: str) -> None:
    raw, ordering = TAMPERED[case]
    with CaptureQueriesContext(connection) as queries, pytest.raises(BadCursor):
        keyset_page(User.objects.all(), ordering, **{"after": None, "before": None, direction: b64(raw)}, per_page=5)
    assert queries.captured_queries == []  # refused before the database sees it


@pytest.mark.parametrize("case", ["a decimal that is not a number", "a number past the largest double"])
def test_a_tampered_cursor_in_the_url_restarts_at_the_first_page_with_the_message(users: list[User], case: str) -> None:
    ft = table(f"?after={b64(TAMPERED[case][0])}&is_staff=true")
    assert ft.error == "That page link is not valid any more; showing the first page."
    assert [u.username for u in ft.page.rows][:2] == ["user117", "user114"]
    assert "after" not in ft.query and ft.query["is_staff"] == "true"


def test_cursors_it_wrote_still_page_by_time(users: list[User]) -> None:
    first = keyset_page(User.objects.all(), BY_JOINED, after=None, before=None, per_page=50)
    second = keyset_page(User.objects.all(), BY_JOINED, after=first.next_cursor, before=None, per_page=50)
    back = keyset_page(User.objects.all(), BY_JOINED, after=None, before=second.prev_cursor, per_page=50)
    assert len(second.rows) == 50 and not {u.pk for u in first.rows} & {u.pk for u in second.rows}
    assert [u.pk for u in back.rows] == [u.pk for u in first.rows]


@pytest.mark.parametrize(("per_page", "size"), [("100", 100), ("²", 25), ("1" * 5000, 25), ("-25", 25)])
def test_it_reads_the_page_size_strictly(users: list[User], per_page: str, size: int) -> None:
    assert table(f"?per_page={per_page}").page.per_page == size


class EveryWidgetFilter(django_filters.FilterSet):
    username = django_filters.CharFilter(
        lookup_expr="startswith", widget=forms.TextInput(attrs={"maxlength": 20, "autofocus": True, "hidden": False})
    )
    is_staff = django_filters.BooleanFilter()
    team = django_filters.ChoiceFilter(field_name="first_name", choices=[("ops", "Operations")], empty_label="any")
    joined_after = django_filters.DateFilter(field_name="date_joined", lookup_expr="date__gte")
    groups = django_filters.ModelMultipleChoiceFilter(queryset=Group.objects.all())

    class Meta:
        model = User
        fields: list[str] = []


def filter_form(query: str) -> str:
    ft = table(query, EveryWidgetFilter, table_class=None)
    assert ft.table is None  # the page writes its own rows
    return tidy_tags(render_to_string("core/_filtered_table.html#filters", {"ft": ft, "target_url": "/t/"}))


def test_the_filter_form_writes_selects_and_inputs_itself(db: None) -> None:
    assert plain_kind(forms.TextInput()) == plain_kind(forms.DateInput()) == "input"
    assert plain_kind(forms.Select()) == plain_kind(forms.NullBooleanSelect()) == "select"
    assert plain_kind(forms.CheckboxInput()) == plain_kind(forms.SelectMultiple()) == ""
    assert plain_kind(forms.Textarea()) == plain_kind(forms.RadioSelect()) == ""

    form = filter_form("?username=%22%3E%3Cb%3E&is_staff=true&team=ops&joined_after=2026-01-02")
    assert (
        '<input type="text" name="username" id="id_username" value="&quot;&gt;&lt;b&gt;" maxlength="20" autofocus>'
    ) in form
    assert '<input type="text" name="joined_after" id="id_joined_after" value="2026-01-02">' in form
    assert re.search(r'<select name="is_staff" id="id_is_staff">\s*<option value="unknown">Unknown</option>', form)
    assert '<option value="true" selected>Yes</option>' in form
    assert '<option value="">any</option>' in form and '<option value="ops" selected>Operations</option>' in form
    # Anything else keeps its widget's own template.
    assert '<select name="groups" id="id_groups" multiple>' in form


def test_a_filter_in_error_points_to_its_message(db: None) -> None:
    form = filter_form("?joined_after=not-a-date&team=nope")
    assert (
        '<input type="text" name="joined_after" id="id_joined_after" value="not-a-date" aria-invalid="true"'
        ' aria-describedby="id_joined_after-error">'
    ) in form
    assert '<span class="field-error" id="id_joined_after-error">Enter a valid date.</span>' in form
    assert '<select name="team" id="id_team" aria-invalid="true" aria-describedby="id_team-error">' in form
    assert '<span class="field-error" id="id_team-error">Select a valid choice.' in form
