"""Helpers the eventsourcing tests share: demo accounts with money moved through the real repository."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from console.demo.accounts import Account, account_deposit, account_open, account_transfer, account_withdraw


def open_account(account_id: str, *, owner: str = "Ada", deposit: int = 0) -> Account:
    account = account_open(owner=owner, actor=None, account_id=account_id)
    if deposit:
        account_deposit(account_id=account_id, amount=deposit, actor=None)
    return account


def some_history(prefix: str = "acc", *, accounts: int = 3, rounds: int = 4) -> list[str]:
    """A few accounts with deposits, withdrawals and transfers between them."""
    ids = [f"{prefix}-{n}" for n in range(accounts)]
    for account_id in ids:
        open_account(account_id, deposit=10_000)
    for round_ in range(rounds):
        for n, account_id in enumerate(ids):
            account_deposit(account_id=account_id, amount=100 + round_, actor=None)
            account_withdraw(account_id=account_id, amount=50, actor=None)
            account_transfer(from_account=account_id, to_account=ids[(n + 1) % accounts], amount=7, actor=None)
    return ids


@pytest.fixture
def small_batches(settings: object) -> Iterator[None]:
    settings.CONSOLE_EVENTSOURCING = {"REBUILD_BATCH": 7}  # type: ignore[attr-defined]  # pytest-django settings
    yield
