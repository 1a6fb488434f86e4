"""The stream browser, the projections page and its actions."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client

from console.demo.accounts import account_withdraw
from console.events.models import Event
from console.events.subscriptions import catch_up
from console.eventsourcing.models import RebuildRun
from console.eventsourcing.replay import run_rebuild
from console.eventsourcing.services import rebuild_start
from tests.conftest import squeezed
from tests.eventsourcing.conftest import open_account

Login = Callable[[User], Client]
HTMX = {"HX-Request": "true"}


def test_the_streams_index_lists_recent_streams_and_finds_by_prefix(login: Login, staff: User) -> None:
    open_account("acc-a1")
    open_account("acc-b2")
    client = login(staff)
    page = client.get("/streams/").content.decode()
    assert "acc-a1" in page and "acc-b2" in page
    page = client.get("/streams/", {"q": "acc-b"}).content.decode()
    assert "acc-b2" in page and "acc-a1" not in page
    assert "No streams start with “<b>”" not in client.get("/streams/", {"q": "<b>"}).content.decode()
    assert "&lt;b&gt;" in client.get("/streams/", {"q": "<b>"}).content.decode()


def test_a_stream_shows_its_events_and_the_state_at_any_version_with_a_diff(login: Login, staff: User) -> None:
    open_account("acc-1", owner="Ada <Lovelace>", deposit=500)
    account_withdraw(account_id="acc-1", amount=120, actor=None)
    client = login(staff)
    page = client.get("/streams/acc-1/").content.decode()
    assert "State at version 3 of 3" in page
    assert "<code>380</code>" in page
    assert "Ada &lt;Lovelace&gt;" in page
    assert page.count("account.deposited") >= 2  # in the version links and the events table
    earlier = squeezed(client.get("/streams/acc-1/", {"version": "2"}).content.decode())
    assert "State at version 2 of 3" in earlier
    assert "<td>balance</td><td><code>0</code></td><td><code>500</code></td>" in earlier


def test_the_version_links_swap_only_the_state_for_htmx(login: Login, staff: User) -> None:
    open_account("acc-1", deposit=5)
    response = login(staff).get("/streams/acc-1/", {"version": "1", "compare": "0"}, headers=HTMX)
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="state"')
    assert "<h1>" not in body
    assert "State at version 1 of 2" in body
    assert response["Vary"] == "HX-Request, Cookie" or "HX-Request" in response["Vary"]


def test_bad_stream_input_never_errors(login: Login, staff: User) -> None:
    open_account("acc-1")
    client = login(staff)
    assert client.get("/streams/acc-nope/").status_code == 404
    assert client.get("/streams/acc-1/", {"version": "x", "compare": "-4"}).status_code == 200
    assert "State at version 1 of 1" in client.get("/streams/acc-1/", {"version": "99"}).content.decode()
    Event.objects.create(stream_type="account", stream_id="acc-1", version=2, type="account.renamed", data={})
    page = client.get("/streams/acc-1/").content.decode()
    assert "no code registers it" in page


def test_the_projections_page_shows_mode_position_lag_and_status(login: Login, staff: User) -> None:
    open_account("acc-1", deposit=5)
    page = login(staff).get("/projections/").content.decode()
    assert "accounts.balances" in page and "accounts.activity" in page
    assert "inline" in page and "async" in page
    assert "2 events" in page  # the async projection is two account events behind
    assert "Rebuild accounts.balances" not in page  # staff without the permission sees no actions


def test_staff_without_the_permission_cannot_act(login: Login, staff: User) -> None:
    client = login(staff)
    assert client.post("/projections/accounts.balances/rebuild/").status_code == 403
    assert client.post("/projections/accounts.activity/pause/").status_code == 403
    assert not RebuildRun.objects.exists()


def test_an_operator_starts_a_rebuild_and_the_page_polls_until_it_is_done(login: Login, operator: User) -> None:
    open_account("acc-1", deposit=5)
    client = login(operator)
    response = client.post("/projections/accounts.balances/rebuild/")
    assert response.status_code == 302
    run = RebuildRun.objects.get()
    assert Event.objects.get(type="projection.rebuild_requested").actor == operator
    poll = client.get("/projections/", headers=HTMX)
    assert poll.status_code == 200
    assert 'hx-trigger="every 1s"' in poll.content.decode()
    run_rebuild(run.pk)
    done = client.get("/projections/", headers=HTMX)
    assert done.status_code == 286
    assert "hx-trigger" not in done.content.decode()
    assert "100% · 2 of 2 events" in done.content.decode()


def test_bad_rebuild_input_is_shown_next_to_the_field(login: Login, operator: User) -> None:
    open_account("acc-1")
    client = login(operator)
    response = client.post("/projections/accounts.activity/rebuild/", {"as_of_time": "last tuesday"})
    assert response.status_code == 200
    assert "is not a time" in response.content.decode()
    response = client.post("/projections/accounts.activity/rebuild/", {"as_of_position": "1", "target": "live"})
    assert "Confirm that the live read model should be replaced" in response.content.decode()
    response = client.post("/projections/accounts.balances/rebuild/", {"as_of_position": "999999"})
    assert "is beyond the end of the log" in response.content.decode()
    assert not RebuildRun.objects.exists()


def test_pause_resume_cancel_and_resume_rebuild_through_the_page(login: Login, operator: User) -> None:
    client = login(operator)
    client.post("/projections/accounts.activity/pause/")
    assert "paused" in client.get("/projections/").content.decode()
    client.post("/projections/accounts.activity/resume/")
    open_account("acc-1")
    client.post("/projections/accounts.balances/rebuild/")
    run = RebuildRun.objects.get()
    client.post(f"/projections/rebuilds/{run.pk}/cancel/")
    run.refresh_from_db()
    assert run.status == "cancelled"
    client.post(f"/projections/rebuilds/{run.pk}/resume/")
    run.refresh_from_db()
    assert run.status == "queued"
    response = client.post(f"/projections/rebuilds/{run.pk}/resume/", follow=True)
    assert "only a stopped one can resume" in response.content.decode()
    audit = Event.objects.filter(actor=operator, type__startswith="projection.").order_by("position")
    types = list(audit.values_list("type", flat=True))
    assert types == [
        "projection.paused",
        "projection.resumed",
        "projection.rebuild_requested",
        "projection.rebuild_cancelled",
        "projection.rebuild_resumed",
    ]


def test_an_as_of_copy_is_compared_side_by_side_then_promoted_on_confirmation(
    transactional_db: None, login: Login, operator: User
) -> None:
    open_account("acc-1", deposit=5)
    catch_up("accounts.activity")
    first = Event.objects.filter(stream_id="acc-1").order_by("position")[0].position
    run = rebuild_start(projection="accounts.activity", actor=operator, as_of_position=first)
    run_rebuild(run.pk)
    client = login(operator)
    compare = client.get(f"/projections/rebuilds/{run.pk}/compare/").content.decode()
    assert "1 of 1 row differ" in compare
    client.post(f"/projections/rebuilds/{run.pk}/promote/")
    run.refresh_from_db()
    assert run.status == "ready"  # not without the confirmation
    client.post(f"/projections/rebuilds/{run.pk}/promote/", {"confirm": "yes"})
    run.refresh_from_db()
    assert run.status == "live"


def test_parked_events_are_listed_with_links_to_the_audit_log(login: Login, staff: User, settings: object) -> None:
    settings.CONSOLE_EVENTS = {"RETRY_BASE_SECONDS": 0}  # type: ignore[attr-defined]  # pytest-django settings
    open_account("acc-1")
    gone = Event.objects.create(stream_type="account", stream_id="acc-9", version=1, type="account.renamed", data={})
    for _ in range(5):
        catch_up("accounts.activity")
    page = squeezed(login(staff).get("/projections/").content.decode())
    assert "1 parked" in page
    assert f'href="/events/{gone.position}/">#{gone.position} account.renamed</a> after 5 attempts' in page


def test_the_dashboard_shows_each_projection_and_its_lag(login: Login, staff: User) -> None:
    open_account("acc-1", deposit=5)
    rebuild_start(projection="accounts.balances", actor=None)
    page = squeezed(login(staff).get("/").content.decode())
    assert 'id="projections-heading"' in page
    assert "<code>accounts.activity</code></td><td>async</td>" in page
    assert "2 events" in page
    assert "1 rebuild under way" in page


def test_unicode_digits_in_version_and_compare_show_the_latest_state(login: Login, staff: User) -> None:
    open_account("acc-1", deposit=5)
    client = login(staff)
    for query in ({"version": "²"}, {"compare": "²"}, {"version": "²", "compare": "³"}, {"version": "\u0661"}):
        response = client.get("/streams/acc-1/", query)
        assert response.status_code == 200, query
        assert "State at version 2 of 2" in response.content.decode(), query


def test_a_rebuild_as_of_a_time_that_cannot_be_represented_is_a_form_error(login: Login, operator: User) -> None:
    open_account("acc-1")
    client = login(operator)
    for moment in ("0001-01-01T00:00+01:00", "9999-12-31T23:59-01:00"):
        response = client.post("/projections/accounts.activity/rebuild/", {"as_of_time": moment})
        assert response.status_code == 200, moment
        assert "too far in the past or the future" in response.content.decode(), moment
    assert not RebuildRun.objects.exists()


def test_a_rebuild_as_of_a_position_past_64_bits_is_a_form_error(login: Login, operator: User) -> None:
    open_account("acc-1")
    response = login(operator).post("/projections/accounts.balances/rebuild/", {"as_of_position": str(2**63)})
    assert response.status_code == 200
    assert "Ensure this value is less than or equal to 9223372036854775807." in response.content.decode()
    assert not RebuildRun.objects.exists()


def test_a_nul_in_the_stream_search_finds_nothing(login: Login, staff: User) -> None:
    open_account("acc-1")
    response = login(staff).get("/streams/", {"q": "acc\x00"})
    assert response.status_code == 200
    assert "acc-1" not in response.content.decode()
