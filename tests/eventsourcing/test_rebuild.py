"""Rebuilds: batched replay into a new generation, swap, "as of" copies, cancel, resume, bad input."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.utils import timezone

from console.demo.accounts import BalanceProjector, account_deposit, account_withdraw
from console.demo.models import AccountActivity, AccountBalance
from console.events.models import Checkpoint, Event
from console.events.reader import read_records
from console.events.records import Record
from console.events.subscriptions import catch_up
from console.eventsourcing import replay
from console.eventsourcing.models import ProjectionState, RebuildRun
from console.eventsourcing.replay import run_rebuild
from console.eventsourcing.services import (
    RebuildError,
    parse_as_of,
    projection_pause,
    projection_resume,
    rebuild_cancel,
    rebuild_promote,
    rebuild_resume,
    rebuild_start,
)
from tests.eventsourcing.conftest import open_account, some_history

BALANCES = "accounts.balances"
ACTIVITY = "accounts.activity"
ACTIVITY_FIELDS = ("account_id", "deposits", "withdrawals", "transfers", "total_in", "total_out", "events")


def balances(generation: int | None = None) -> dict[str, tuple[int, int]]:
    rows = (
        AccountBalance.objects.all() if generation is None else AccountBalance.generations.filter(generation=generation)
    )
    return {r.account_id: (r.balance, r.version) for r in rows}


def activity(generation: int | None = None) -> list[tuple[Any, ...]]:
    rows = (
        AccountActivity.objects.all()
        if generation is None
        else AccountActivity.generations.filter(generation=generation)
    )
    return list(rows.order_by("account_id").values_list(*ACTIVITY_FIELDS))


def head() -> int:
    return Event.objects.order_by("-position").values_list("position", flat=True)[0]


@pytest.mark.parametrize("rows_kept", [100_000, 2], ids=["rows kept between batches", "few rows kept"])
def test_a_rebuild_replays_in_batches_into_a_new_generation_and_swaps_it_in(
    operator: User, small_batches: None, rows_kept: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(BalanceProjector, "replay_rows_kept", rows_kept)
    some_history()
    expected = balances()
    AccountBalance.objects.update(balance=0)  # a broken read model the rebuild must repair
    run = rebuild_start(projection=BALANCES, actor=operator)
    requested = Event.objects.get(type="projection.rebuild_requested")
    assert (requested.actor_id, requested.data["run"], requested.data["as_of"]) == (operator.pk, run.pk, "now")

    assert run_rebuild(run.pk) == "live"
    run.refresh_from_db()
    assert balances() == expected
    assert ProjectionState.objects.get(name=BALANCES).live_generation == run.generation
    assert set(AccountBalance.generations.values_list("generation", flat=True)) == {run.generation}
    assert run.processed == run.total == Event.objects.filter(stream_type="account").count()
    assert run.percent == 100
    assert Event.objects.filter(type="projection.rebuild_finished", data__run=run.pk).exists()


def test_an_inline_projection_keeps_serving_and_being_written_during_a_rebuild(
    db: None, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    some_history()
    run = rebuild_start(projection=BALANCES, actor=None)
    # Half replayed: the live generation still answers, and new saves still land in it...
    original = read_records
    calls = {"n": 0}

    def read_then_write(*args: Any, **kwargs: Any) -> list[Record]:
        calls["n"] += 1
        if calls["n"] == 2:
            account_deposit(account_id="acc-0", amount=1_000_000, actor=None)
            assert AccountBalance.objects.get(account_id="acc-0").balance > 1_000_000
        return original(*args, **kwargs)

    monkeypatch.setattr(replay, "read_records", read_then_write)  # a deposit lands mid-rebuild
    run_rebuild(run.pk)
    monkeypatch.undo()
    # ...and the swapped-in generation has it too.
    assert AccountBalance.objects.get(account_id="acc-0").balance > 1_000_000
    open_account("acc-new", deposit=5)
    assert AccountBalance.generations.get(account_id="acc-new").generation == run.generation


@pytest.mark.parametrize("by", ["position", "time"])
def test_an_inline_projection_rebuilt_as_of_a_past_point_equals_it_as_it_was_then(
    transactional_db: None, by: str
) -> None:
    # Every save commits on its own, as in production: on PostgreSQL "as of" follows commit order.
    some_history(rounds=2)
    then, position = balances(), head()
    moment = Event.objects.get(position=position).recorded_at
    later = some_history("later", rounds=1)
    account_deposit(account_id="acc-0", amount=9, actor=None)
    now = balances()
    if by == "time":
        # Events recorded after the moment must not count, whatever their position.
        future = moment + timedelta(seconds=1)
        # The log is append-only through the ORM; the test moves later events' clock with plain SQL.
        with connection.cursor() as cursor:
            cursor.execute("UPDATE events_event SET recorded_at = %s WHERE position > %s", [future, position])
        run = rebuild_start(projection=BALANCES, actor=None, as_of_time=moment)
    else:
        run = rebuild_start(projection=BALANCES, actor=None, as_of_position=position)
    assert run_rebuild(run.pk) == "ready"
    assert balances(run.generation) == then
    assert balances() == now  # the live model is untouched
    assert set(later) <= set(now)
    with pytest.raises(RebuildError, match="inline"):
        rebuild_promote(run_id=run.pk, actor=None)


def test_an_async_projection_rebuilt_as_of_a_position_can_be_promoted_and_resumed(
    transactional_db: None, operator: User, small_batches: None
) -> None:
    some_history(rounds=2)
    catch_up(ACTIVITY)
    then, position = activity(), head()
    some_history("later", rounds=2)
    catch_up(ACTIVITY)
    now = activity()
    run = rebuild_start(projection=ACTIVITY, actor=operator, as_of_position=position)
    run_rebuild(run.pk)
    assert activity(run.generation) == then
    assert activity() == now

    rebuild_promote(run_id=run.pk, actor=operator)
    assert activity() == then
    checkpoint = Checkpoint.objects.get(name=ACTIVITY)
    assert (checkpoint.position, checkpoint.status) == (position, "paused")
    assert Event.objects.filter(type="projection.rebuild_promoted", actor=operator).exists()
    assert catch_up(ACTIVITY) == 0  # paused where the copy stands

    projection_resume(name=ACTIVITY, actor=operator)
    catch_up(ACTIVITY)
    assert activity() == now


def test_a_full_rebuild_of_an_async_projection_moves_its_checkpoint_with_the_swap(db: None) -> None:
    some_history()
    catch_up(ACTIVITY)
    expected = activity()
    AccountActivity.objects.update(total_in=0)
    account_deposit(account_id="acc-1", amount=3, actor=None)  # not yet handled by the subscription
    run = rebuild_start(projection=ACTIVITY, actor=None)
    run_rebuild(run.pk)
    last_account_event = Event.objects.filter(stream_type="account").order_by("-position")[0].position
    assert Checkpoint.objects.get(name=ACTIVITY).position >= last_account_event
    catch_up(ACTIVITY)  # nothing doubled by the subscription after the swap
    rows = {r[0]: r[4] for r in activity()}
    assert rows["acc-1"] == {r[0]: r[4] for r in expected}["acc-1"] + 3


def test_a_cancelled_or_failed_rebuild_resumes_from_where_it_stopped(
    db: None, small_batches: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    some_history()
    expected = balances()
    run = rebuild_start(projection=BALANCES, actor=None)
    rebuild_cancel(run_id=run.pk, actor=None)
    assert run_rebuild(run.pk) == "cancelled"

    rebuild_resume(run_id=run.pk, actor=None)
    original = read_records
    calls = {"n": 0}

    def fail_on_third(*args: Any, **kwargs: Any) -> list[Record]:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("database went away")
        return original(*args, **kwargs)

    monkeypatch.setattr(replay, "read_records", fail_on_third)
    with pytest.raises(RuntimeError):
        run_rebuild(run.pk)
    monkeypatch.undo()
    run.refresh_from_db()
    assert (run.status, run.processed) == ("failed", 14)
    assert "database went away" in run.error

    rebuild_resume(run_id=run.pk, actor=None)
    assert run_rebuild(run.pk) == "live"
    run.refresh_from_db()
    assert run.processed == Event.objects.filter(stream_type="account").count()
    assert balances() == expected


def test_a_running_rebuild_stops_at_its_next_batch_when_cancelled(operator: User) -> None:
    open_account("acc-1", deposit=5)
    run = rebuild_start(projection=BALANCES, actor=operator)
    RebuildRun.objects.filter(pk=run.pk).update(status="running")
    assert rebuild_cancel(run_id=run.pk, actor=operator).status == "cancelling"
    assert Event.objects.filter(type="projection.rebuild_cancelled", actor=operator).exists()
    assert run_rebuild(run.pk) == "cancelled"
    with pytest.raises(RebuildError, match="nothing to cancel"):
        rebuild_cancel(run_id=run.pk, actor=operator)


def test_only_one_rebuild_of_a_projection_runs_at_a_time(db: None) -> None:
    open_account("acc-1")
    rebuild_start(projection=BALANCES, actor=None)
    with pytest.raises(RebuildError, match="already under way"):
        rebuild_start(projection=BALANCES, actor=None)


def test_events_of_types_no_code_knows_are_skipped_and_counted(db: None) -> None:
    open_account("acc-1", deposit=5)
    Event.objects.create(stream_type="account", stream_id="acc-9", version=1, type="account.renamed", data={})
    run = rebuild_start(projection=ACTIVITY, actor=None)
    run_rebuild(run.pk)
    run.refresh_from_db()
    assert (run.status, run.skipped, run.processed) == ("live", 1, 2)


def test_pause_and_resume_are_audited_and_only_for_async_projections(operator: User) -> None:
    projection_pause(name=ACTIVITY, actor=operator)
    assert Checkpoint.objects.get(name=ACTIVITY).status == "paused"
    projection_resume(name=ACTIVITY, actor=operator)
    assert Checkpoint.objects.get(name=ACTIVITY).status == "active"
    assert list(Event.objects.filter(actor=operator).order_by("position").values_list("type", flat=True)) == [
        "projection.paused",
        "projection.resumed",
    ]
    with pytest.raises(RebuildError, match="inline"):
        projection_pause(name=BALANCES, actor=operator)


@pytest.mark.parametrize(
    ("value", "message"),
    [("yesterday", "not a time"), ("2026-13-01", "not a time"), ("2999-01-01", "future"), ("", "not a time")],
)
def test_bad_as_of_values_get_a_clear_error(value: str, message: str) -> None:
    with pytest.raises(RebuildError, match=message):
        parse_as_of(value)


def test_as_of_accepts_dates_and_times() -> None:
    assert parse_as_of("2026-01-31").day == 31
    assert parse_as_of("2026-01-31T17:45:00Z").hour == 17
    assert timezone.is_aware(parse_as_of("2026-01-31T17:45"))


def test_the_rebuild_bounds_are_checked(db: None) -> None:
    with pytest.raises(RebuildError, match="beyond the end of the log"):
        rebuild_start(projection=BALANCES, actor=None, as_of_position=5)
    with pytest.raises(RebuildError, match="not both"):
        rebuild_start(projection=BALANCES, actor=None, as_of_position=5, as_of_time=timezone.now())
    with pytest.raises(RebuildError, match="no projection"):
        rebuild_start(projection="nope", actor=None)
    open_account("acc-1")
    with pytest.raises(RebuildError, match="inline"):
        rebuild_start(projection=BALANCES, actor=None, as_of_position=1, swap=True)
    with pytest.raises(RebuildError, match="No event was recorded"):
        rebuild_start(projection=BALANCES, actor=None, as_of_time=timezone.now() - timedelta(days=3650))


def test_the_management_command_rebuilds_and_reports_status(transactional_db: None, capsys: Any) -> None:
    open_account("acc-1", deposit=5)
    account_withdraw(account_id="acc-1", amount=2, actor=None)
    deposit = Event.objects.get(stream_id="acc-1", version=2).position
    call_command("projections", "rebuild", BALANCES, "--position", str(deposit))
    out = capsys.readouterr().out
    assert f"as of position {deposit}: ready, 2 events" in out
    call_command("projections", "rebuild", ACTIVITY)
    assert "live, 3 events" in capsys.readouterr().out
    call_command("projections", "status")
    out = capsys.readouterr().out
    assert "accounts.activity" in out and "async" in out and "inline" in out
    with pytest.raises(CommandError, match="not a time"):
        call_command("projections", "rebuild", BALANCES, "--as-of", "soon")
    with pytest.raises(CommandError, match="no projection"):
        call_command("projections", "rebuild", "nope")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="planner statistics are PostgreSQL's")
def test_a_rebuild_has_a_log_that_grew_in_bulk_measured_first(transactional_db: None) -> None:
    with transaction.atomic():
        Event.objects.bulk_create(Event(type="account.deposited", data={"amount": n}) for n in range(3000))
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_force_next_flush()")
    with connection.cursor() as cursor:  # the flush happens once the previous statement has ended
        replay._measure_log()
        cursor.execute("SELECT reltuples FROM pg_class WHERE oid = 'events_event'::regclass")
        assert cursor.fetchone()[0] >= 3000
