"""The read models' bulk upsert stores what ``bulk_create(update_conflicts=True)`` would."""

from __future__ import annotations

import pytest
from django.db import connection

from console.demo.models import AccountBalance
from console.eventsourcing import upsert as upsert_module
from console.eventsourcing.upsert import upsert

UNIQUE = ("generation", "account_id")


def stored() -> list[tuple[object, ...]]:
    return list(
        AccountBalance.generations.order_by("generation", "account_id").values_list(
            "generation", "account_id", "owner", "balance", "version", "closed"
        )
    )


def test_it_inserts_new_rows_and_updates_the_ones_that_exist(db: None) -> None:
    AccountBalance.generations.create(generation=3, account_id="a", owner="Ada", balance=5, version=1)
    existing = AccountBalance.generations.get(generation=3, account_id="a")
    existing.balance, existing.version, existing.closed = 40, 2, True
    rows = [existing, AccountBalance(generation=3, account_id="b", owner="Bo", balance=7, version=1)]
    rows.append(AccountBalance(generation=4, account_id="a", owner="Ada", balance=1, version=1))
    upsert(AccountBalance, rows, unique=UNIQUE)
    assert stored() == [(3, "a", "Ada", 40, 2, True), (3, "b", "Bo", 7, 1, False), (4, "a", "Ada", 1, 1, False)]
    assert AccountBalance.generations.get(generation=3, account_id="a").pk == existing.pk


def test_values_of_other_types_are_prepared_by_their_field(db: None) -> None:
    row = AccountBalance(generation=1, account_id="a", owner="Ada", version=1)
    row.balance = "12"  # a form value: the field converts it, as the ORM would
    upsert(AccountBalance, [row], unique=UNIQUE)
    assert stored() == [(1, "a", "Ada", 12, 1, False)]


def test_many_rows_are_written_in_statements_the_database_accepts(db: None) -> None:
    rows = [AccountBalance(generation=1, account_id=f"acc-{n}", owner="x", balance=n) for n in range(6000)]
    upsert(AccountBalance, rows, unique=UNIQUE)
    upsert(AccountBalance, rows[:10], unique=UNIQUE)
    assert AccountBalance.generations.count() == 6000
    assert sum(AccountBalance.generations.values_list("balance", flat=True)) == sum(range(6000))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="only PostgreSQL's arrays limit the column types")
def test_columns_that_cannot_travel_in_an_array_go_through_the_orm(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(connection.data_types, "BooleanField")
    upsert_module._statement.cache_clear()
    try:
        assert upsert_module._statement(AccountBalance, UNIQUE, "default") is None
        upsert(AccountBalance, [AccountBalance(generation=1, account_id="a", owner="Ada", closed=True)], unique=UNIQUE)
    finally:
        monkeypatch.undo()
        upsert_module._statement.cache_clear()
    assert stored() == [(1, "a", "Ada", 0, 0, True)]
