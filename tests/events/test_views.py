"""The audit log browser: filters, keyset pages, the event detail, the catalog and the dashboard panel."""

from __future__ import annotations

import pytest
import structlog
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from console.events.models import Event
from console.events.pipeline import batch, emit
from tests.conftest import squeezed
from tests.events.conftest import PING


def _log(operator: User, staff: User) -> list[Event]:
    stored: list[Event | None] = []
    with batch():
        for n in range(60):
            stored.append(
                emit(PING, actor=operator if n % 2 else staff, stream_type="order", stream_id=f"order-{n % 3}", n=n)
            )
        stored.append(emit("auth.logged_out", actor=staff, username="staff"))
    return [event for event in stored if event is not None]


def test_the_list_shows_newest_first_and_pages_without_counting(client: Client, operator: User, staff: User) -> None:
    events = _log(operator, staff)
    client.force_login(staff)
    with CaptureQueriesContext(connection) as queries:
        page = client.get("/events/").content.decode()
    assert f"#{events[-1].position}" in page and f">#{events[0].position}<" not in page
    assert 'rel="next"' in page
    event_queries = [q["sql"].upper() for q in queries.captured_queries if "EVENTS_EVENT" in q["sql"].upper()]
    assert event_queries and not any("COUNT(" in sql or "OFFSET" in sql for sql in event_queries)


def test_the_rows_are_escaped_and_link_to_the_event_and_its_stream(client: Client, staff: User) -> None:
    quiet = emit(PING, n=1)
    loud = emit(PING, n=2, stream_type="order", stream_id="a&b <i>", note="<script>x</script>", actor=staff)
    assert quiet is not None and loud is not None
    client.force_login(staff)
    page = squeezed(client.get("/events/").content.decode())
    assert (
        f'<tr><td><a href="/events/{loud.position}/">#{loud.position}</a></td>'
        f"<td>{timezone.localtime(loud.recorded_at):%Y-%m-%d %H:%M:%S}</td><td>test.ping</td><td>staff</td>"
        '<td><a href="/events/?stream=a%26b%20%3Ci%3E">a&amp;b &lt;i&gt;</a></td>'
        "<td>n=2, note=&lt;script&gt;x&lt;/script&gt;</td></tr>"
    ) in page
    assert f'<a href="/events/{quiet.position}/">#{quiet.position}</a></td>' in page
    assert "<td>test.ping</td><td>—</td><td></td><td>n=1</td></tr>" in page
    assert "<script>x" not in page and "<i>" not in page
    long = emit(PING, n=3, note="x" * 200)
    assert long is not None and len(long.summary) == 120 and long.summary.endswith("x…")


def test_a_page_of_the_log_renders_no_template_per_row_or_per_filter(
    client: Client, operator: User, staff: User
) -> None:
    _log(operator, staff)
    client.force_login(staff)
    one_row = client.get("/events/?type=auth.logged_out")
    full_page = client.get("/events/?since=2020-01-01T00:00")
    assert one_row.content.decode().count("<tr>") == 2 and full_page.content.decode().count("<tr>") == 51  # +heading
    names = [template.name or "" for template in full_page.templates]
    assert len(names) == len(one_row.templates)
    assert not any(name.startswith(("django/forms/", "django_tables2/")) for name in names), names


def test_it_filters_by_type_actor_and_stream(client: Client, operator: User, staff: User) -> None:
    events = _log(operator, staff)
    client.force_login(staff)
    page = client.get("/events/?type=auth.logged_out").content.decode()
    assert f"#{events[-1].position}" in page and f"#{events[-2].position}<" not in page
    page = client.get("/events/?type=test.ping&actor=operator&stream=order-1").content.decode()
    shown = [e for e in events if e.type == "test.ping" and e.actor_id == operator.pk and e.stream_id == "order-1"]
    hidden = [e for e in events if e not in shown]
    assert all(f">#{e.position}<" in page for e in shown[-10:])
    assert not any(f">#{e.position}<" in page for e in hidden)


def test_it_filters_by_request_id_and_bounded_text(client: Client, staff: User) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-abc"):
        tagged = emit(PING, n=7, note="needle in the data")
    other = emit(PING, n=8)
    assert tagged is not None and other is not None
    client.force_login(staff)
    page = client.get("/events/?request=req-abc").content.decode()
    assert f">#{tagged.position}<" in page and f">#{other.position}<" not in page
    page = client.get("/events/?q=needle").content.decode()
    assert f">#{tagged.position}<" in page and f">#{other.position}<" not in page


def test_bad_filters_show_form_errors_not_500(client: Client, staff: User) -> None:
    client.force_login(staff)
    for query, message in [
        ("since=yesterday", "Enter a valid date/time"),
        ("type=no.such.type", "No event type has this name"),
        ("actor=nobody", "No user has this username"),
        ("since=2026-01-02T00:00&until=2026-01-01T00:00", "must be after"),
        ("after=garbage!!", "not valid any more"),
    ]:
        response = client.get(f"/events/?{query}")
        assert response.status_code == 200, query
        assert message in response.content.decode(), query


def test_the_htmx_fragment_is_only_the_table_region(client: Client, operator: User, staff: User) -> None:
    _log(operator, staff)
    client.force_login(staff)
    response = client.get("/events/?type=test.ping", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="table-region"') and "<html" not in body
    assert "HX-Request" in response["Vary"]


def test_the_detail_shows_json_stream_causation_and_same_request(client: Client, staff: User) -> None:
    with structlog.contextvars.bound_contextvars(request_id="req-1"):
        cause = emit(PING, n=1, stream_type="order", stream_id="order-9", actor=staff, note="<script>alert(1)</script>")
        assert cause is not None
        with structlog.contextvars.bound_contextvars(causation_id=str(cause.position)):
            effect = emit(PING, n=2, stream_type="order", stream_id="order-9")
    assert effect is not None
    client.force_login(staff)
    page = client.get(f"/events/{effect.position}/").content.decode()
    assert "&quot;n&quot;: 2" in page
    assert 'href="/events/?stream=order-9"' in page
    assert f'href="/events/{cause.position}/"' in page  # causation chain and same request
    page = client.get(f"/events/{cause.position}/").content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert "Caused next" in page and f'href="/events/{effect.position}/"' in page


def test_an_unknown_event_is_a_404(client: Client, staff: User) -> None:
    client.force_login(staff)
    assert client.get("/events/999999/").status_code == 404


def test_the_catalog_lists_declared_types_and_their_policy(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get("/events/catalog/").content.decode()
    assert "<code>auth.login_failed</code>" in page and "console_login_failures_total" in page
    assert "forever (audit)" in page and "published" in page


def test_the_dashboard_shows_the_event_log_panel(client: Client, staff: User) -> None:
    emit(PING, n=1)
    client.force_login(staff)
    page = client.get("/").content.decode()
    assert "Oldest open transaction" in page
    expected = "serializes writers" if connection.vendor != "postgresql" else "readers"
    assert expected in page
    assert "events.webhooks" in page or "Newest event" in page


def test_filter_values_are_echoed_escaped(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get("/events/?q=%22%3E%3Cscript%3Ex%3C/script%3E").content.decode()
    assert 'value="&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in page and "<script>x</script>" not in page


@pytest.mark.parametrize("field", ["since", "until"])
@pytest.mark.parametrize("moment", ["0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"])
def test_a_time_that_cannot_be_represented_is_a_form_error_next_to_its_field(
    client: Client, staff: User, field: str, moment: str
) -> None:
    client.force_login(staff)
    response = client.get("/events/", {field: moment})
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<span class="field-error" id="id_{field}-error">This time is too far in the past or the future' in body
    assert "Fix the filters marked above" in body


def test_a_causation_id_in_unicode_digits_is_shown_not_followed(client: Client, staff: User) -> None:
    with structlog.contextvars.bound_contextvars(causation_id="²"):
        effect = emit(PING, n=1)
    assert effect is not None
    client.force_login(staff)
    response = client.get(f"/events/{effect.position}/")
    assert response.status_code == 200
    assert "² (not in the log)" in squeezed(response.content.decode())
