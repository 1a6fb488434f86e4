"""Projections into ordinary models: inline in the saving transaction, async through a subscription."""

from __future__ import annotations

from typing import Any

import pytest
from django.db import transaction

from console.demo.accounts import LARGE_WITHDRAWAL, BalanceProjector, account_deposit, account_withdraw
from console.demo.models import AccountActivity, AccountBalance
from console.events.models import Checkpoint, Event, ParkedEvent
from console.events.subscriptions import catch_up
from console.eventsourcing import projections
from console.eventsourcing.models import ProjectionState
from tests.eventsourcing.conftest import open_account, some_history

ACTIVITY = "accounts.activity"


def balances() -> dict[str, int]:
    return dict(AccountBalance.objects.values_list("account_id", "balance"))


def test_an_inline_projection_is_current_inside_the_saving_transaction(db: None) -> None:
    open_account("acc-1")
    with transaction.atomic():
        account_deposit(account_id="acc-1", amount=250, actor=None)
        assert AccountBalance.objects.get(account_id="acc-1").balance == 250
        transaction.set_rollback(True)
    assert AccountBalance.objects.get(account_id="acc-1").balance == 0


def test_an_async_projection_catches_up_through_its_subscription(db: None) -> None:
    ids = some_history()
    assert not AccountActivity.objects.exists()
    assert catch_up(ACTIVITY) > 0
    activity = {row.account_id: row for row in AccountActivity.objects.all()}
    assert {key: row.net for key, row in activity.items()} == balances()
    for account_id in ids:
        assert activity[account_id].events == Event.objects.filter(stream_id=account_id).count()
    checkpoint = Checkpoint.objects.get(name=ACTIVITY)
    assert checkpoint.position == Event.objects.order_by("-position").values_list("position", flat=True).first()


def test_read_models_are_plain_models_that_show_only_the_live_generation(db: None) -> None:
    open_account("acc-1", deposit=5)
    AccountBalance.generations.create(account_id="acc-1", owner="copy", balance=99, generation=7)
    assert list(AccountBalance.objects.values_list("owner", "balance")) == [("Ada", 5)]
    ProjectionState.objects.filter(name="accounts.balances").update(live_generation=7)
    assert list(AccountBalance.objects.values_list("owner", "balance")) == [("copy", 99)]


def test_wait_until_gives_read_your_writes_for_async_projections(db: None) -> None:
    open_account("acc-1")
    stored = account_deposit(account_id="acc-1", amount=10, actor=None)
    assert projections.wait_until("accounts.balances", stored[-1].position, timeout=0)
    assert not projections.wait_until(ACTIVITY, stored[-1].position, timeout=0.05)
    catch_up(ACTIVITY)
    assert projections.wait_until(ACTIVITY, stored[-1].position, timeout=0)


def test_side_effects_run_live_and_not_while_replaying(db: None, django_capture_on_commit_callbacks: Any) -> None:
    open_account("acc-1", deposit=LARGE_WITHDRAWAL)
    account_withdraw(account_id="acc-1", amount=LARGE_WITHDRAWAL, actor=None)
    with django_capture_on_commit_callbacks(execute=True):
        catch_up(ACTIVITY)
    alerts = Event.objects.filter(type="account.large_withdrawal")
    assert [a.data["account"] for a in alerts] == ["acc-1"]

    replayer = projections.get(ACTIVITY).__class__(replaying=True)
    with django_capture_on_commit_callbacks(execute=True):
        replayer.project(list(Event.objects.filter(stream_id="acc-1").order_by("position")), generation=5)
    assert alerts.count() == 1
    assert AccountActivity.generations.get(generation=5).total_out == LARGE_WITHDRAWAL


def test_an_unknown_event_type_is_reported_and_parked_not_crashed_on(db: None, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"RETRY_BASE_SECONDS": 0}
    open_account("acc-1", deposit=3)
    Event.objects.create(stream_type="account", stream_id="acc-2", version=1, type="account.renamed", data={})
    account_deposit(account_id="acc-1", amount=4, actor=None)
    for _ in range(5):
        catch_up(ACTIVITY)
    parked = ParkedEvent.objects.get(checkpoint__name=ACTIVITY)
    assert parked.event.type == "account.renamed"
    assert "account.renamed" in parked.error
    assert AccountActivity.objects.get(account_id="acc-1").total_in == 7
    status = projections.ProjectionStatus.of(projections.get(ACTIVITY))
    assert (status.parked, status.lag_events) == (1, 0)


def test_status_reports_lag_in_events_and_seconds(db: None) -> None:
    open_account("acc-1", deposit=3)
    status = projections.ProjectionStatus.of(projections.get(ACTIVITY))
    assert (status.mode, status.lag_events, status.state) == ("async", 2, "active")
    assert status.lag_seconds >= 0
    inline = projections.ProjectionStatus.of(projections.get("accounts.balances"))
    assert (inline.mode, inline.lag_events) == ("inline", 0)
    catch_up(ACTIVITY)
    assert projections.ProjectionStatus.of(projections.get(ACTIVITY)).lag_events == 0


@pytest.mark.parametrize("name", ["accounts.balances", ACTIVITY])
def test_projectors_are_registered_with_their_mode(name: str) -> None:
    projector = projections.get(name)
    assert projector.mode == ("inline" if name == "accounts.balances" else "async")
    assert "account.deposited" in projector.types


class DepositsOnly(BalanceProjector):
    def wants(self, type_: str, stream_type: str) -> bool:
        return type_ == "account.deposited"


def test_accepted_asks_a_projector_that_narrows_what_it_wants(db: None) -> None:
    some_history(accounts=2, rounds=1)
    events = list(Event.objects.order_by("position"))
    default = BalanceProjector()
    assert default.accepted(events) == [event for event in events if default.accepts(event)]
    assert {event.type for event in default.accepted(events)} > {"account.deposited", "account.opened"}
    assert {event.type for event in DepositsOnly().accepted(events)} == {"account.deposited"}
