"""The demo accounts' read models through plain generic views, and moving money from an account's page."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib.auth.models import User
from django.test import Client

from console.demo.models import AccountBalance
from console.events.models import Event
from tests.eventsourcing.conftest import open_account

Login = Callable[[User], Client]


def test_read_models_are_served_by_plain_generic_views(login: Login, staff: User) -> None:
    open_account("acc-1", owner="Ada", deposit=5)
    client = login(staff)
    page = client.get("/read-models/accounts/").content.decode()
    assert "acc-1" in page and "Ada" in page
    assert "Ada" in client.get("/read-models/accounts/acc-1/").content.decode()
    assert client.get("/read-models/accounts/acc-nope/").status_code == 404
    assert "No activity projected yet" in client.get("/read-models/activity/").content.decode()
    AccountBalance.generations.create(account_id="acc-copy", owner="Copy", generation=9)
    assert "acc-copy" in client.get("/read-models/accounts/", {"generation": "9"}).content.decode()
    assert "acc-copy" not in client.get("/read-models/accounts/").content.decode()


def test_a_domain_error_is_shown_to_the_user_and_appends_nothing(login: Login, operator: User) -> None:
    open_account("acc-1", deposit=5)
    client = login(operator)
    count = Event.objects.count()
    response = client.post("/read-models/accounts/acc-1/act/", {"action": "withdraw", "amount": "6"})
    assert response.status_code == 200
    assert "Insufficient funds: the balance is 5, the withdrawal 6." in response.content.decode()
    assert Event.objects.count() == count
    response = client.post("/read-models/accounts/acc-1/act/", {"action": "transfer", "amount": "1", "to_account": "x"})
    assert "There is no such account." in response.content.decode()
    response = client.post("/read-models/accounts/acc-1/act/", {"action": "withdraw", "amount": "abc"})
    assert response.status_code == 200
    response = client.post("/read-models/accounts/acc-1/act/", {"action": "deposit", "amount": "7"}, follow=True)
    # No worker runs the subscription here, so the page says the async figures lag behind.
    assert "The activity figures are still catching up" in response.content.decode()
    assert AccountBalance.objects.get(account_id="acc-1").balance == 12
    assert Event.objects.filter(stream_id="acc-1").order_by("-position")[0].actor == operator


def test_moving_money_needs_the_permission(login: Login, staff: User) -> None:
    open_account("acc-1", deposit=5)
    response = login(staff).post("/read-models/accounts/acc-1/act/", {"action": "deposit", "amount": "1"})
    assert response.status_code == 403


def test_the_eventsourcing_pages_link_to_the_read_models(login: Login, staff: User) -> None:
    client = login(staff)
    for page in ("/projections/", "/streams/"):
        body = client.get(page).content.decode()
        assert '<a href="/read-models/accounts/">account balances</a>' in body, page
        assert '<a href="/read-models/activity/">account activity</a>' in body, page


def test_the_account_page_offers_the_form_only_with_the_permission(login: Login, staff: User, operator: User) -> None:
    open_account("acc-1", deposit=5)
    assert "Move money" not in login(staff).get("/read-models/accounts/acc-1/").content.decode()
    page = login(operator).get("/read-models/accounts/acc-1/").content.decode()
    assert 'action="/read-models/accounts/acc-1/act/"' in page


def test_a_generation_in_unicode_digits_shows_the_live_rows(login: Login, staff: User) -> None:
    open_account("acc-live", owner="Ada")
    AccountBalance.generations.create(account_id="acc-copy", owner="Copy", generation=2)
    client = login(staff)
    for path in ("/read-models/accounts/", "/read-models/activity/"):
        for generation in ("²", "\u0661", str(2**64)):
            response = client.get(path, {"generation": generation})
            assert response.status_code == 200, (path, generation)
    page = client.get("/read-models/accounts/", {"generation": "²"}).content.decode()
    assert "acc-live" in page and "acc-copy" not in page
