"""The demo domain: bank accounts with deposits, withdrawals and transfers, and two projections of them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

from console.demo.models import AccountActivity, AccountBalance
from console.events.catalog import declare
from console.events.pipeline import emit
from console.events.records import Record, StoredEvent
from console.eventsourcing import repository
from console.eventsourcing.domain import Aggregate, DomainError, DomainEvent, applies, domain_event, upcaster
from console.eventsourcing.projections import RowProjector, handles

# Withdrawals at or above this amount (in cents) raise an alert from the async projection.
LARGE_WITHDRAWAL = 100_000

LARGE_WITHDRAWAL_ALERT = declare(
    "account.large_withdrawal",
    description="Demo alert: a large withdrawal was projected (never raised while replaying).",
    required={"account", "amount", "position"},
    level="warning",
)


@domain_event("account.opened", version=2)
@dataclass(frozen=True, kw_only=True)
class Opened(DomainEvent):
    """An account was opened."""

    owner: str
    currency: str = "EUR"


# Version 1 had no currency: every account opened then was in euros.
@upcaster("account.opened", from_version=1)
def _opened_v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    return {**data, "currency": "EUR"}


@domain_event("account.deposited")
@dataclass(frozen=True, kw_only=True)
class Deposited(DomainEvent):
    """Money was paid into an account."""

    amount: int


@domain_event("account.withdrawn")
@dataclass(frozen=True, kw_only=True)
class Withdrawn(DomainEvent):
    """Money was taken out of an account."""

    amount: int


@domain_event("account.transferred_out")
@dataclass(frozen=True, kw_only=True)
class TransferredOut(DomainEvent):
    """Money left an account for another one."""

    amount: int
    to_account: str


@domain_event("account.transferred_in")
@dataclass(frozen=True, kw_only=True)
class TransferredIn(DomainEvent):
    """Money arrived from another account."""

    amount: int
    from_account: str


@domain_event("account.closed")
@dataclass(frozen=True, kw_only=True)
class Closed(DomainEvent):
    """An account was closed."""

    reason: str = ""


class Account(Aggregate):
    """A bank account; amounts are whole cents, and the balance may never go below zero."""

    stream_type: ClassVar[str] = "account"
    snapshot_every: ClassVar[int] = 50

    owner: str
    currency: str
    balance: int
    closed: bool

    @classmethod
    def open(cls, *, owner: str, currency: str = "EUR", account_id: str | None = None) -> Account:
        owner = owner.strip()
        if not owner:
            raise DomainError("An account needs an owner.")
        account = cls(account_id or f"acc-{uuid.uuid4().hex[:12]}")
        account.trigger(Opened(owner=owner, currency=currency))
        return account

    def _check_amount(self, amount: int) -> None:
        if self.closed:
            raise DomainError(f"Account {self.id} is closed.")
        if amount <= 0:
            raise DomainError("The amount must be positive.")

    def deposit(self, amount: int) -> None:
        self._check_amount(amount)
        self.trigger(Deposited(amount=amount))

    def withdraw(self, amount: int) -> None:
        self._check_amount(amount)
        if amount > self.balance:
            raise DomainError(f"Insufficient funds: the balance is {self.balance}, the withdrawal {amount}.")
        self.trigger(Withdrawn(amount=amount))

    def transfer_to(self, other: Account, amount: int) -> None:
        if other.id == self.id:
            raise DomainError("An account cannot transfer to itself.")
        self._check_amount(amount)
        other._check_amount(amount)
        if amount > self.balance:
            raise DomainError(f"Insufficient funds: the balance is {self.balance}, the transfer {amount}.")
        self.trigger(TransferredOut(amount=amount, to_account=other.id))
        other.trigger(TransferredIn(amount=amount, from_account=self.id))

    def close(self, reason: str = "") -> None:
        if self.closed:
            raise DomainError(f"Account {self.id} is already closed.")
        if self.balance:
            raise DomainError("Only an empty account can be closed.")
        self.trigger(Closed(reason=reason))

    @applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner
        self.currency = event.currency
        self.balance = 0
        self.closed = False

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount

    @applies(Withdrawn)
    def _withdrawn(self, event: Withdrawn) -> None:
        self.balance -= event.amount

    @applies(TransferredOut)
    def _transferred_out(self, event: TransferredOut) -> None:
        self.balance -= event.amount

    @applies(TransferredIn)
    def _transferred_in(self, event: TransferredIn) -> None:
        self.balance += event.amount

    @applies(Closed)
    def _closed(self, event: Closed) -> None:
        self.closed = True


class BalanceProjector(RowProjector):
    """Balances per account, inline: current as soon as the command's transaction commits."""

    name: ClassVar[str] = "accounts.balances"
    mode = "inline"
    description: ClassVar[str] = "Balance per account (inline)"
    model = AccountBalance
    key_field: ClassVar[str] = "account_id"

    @handles(Opened)
    def _opened(self, row: AccountBalance, event: Opened, stored: StoredEvent) -> None:
        row.owner = event.owner
        row.version = stored.version or 0

    @handles(Deposited)
    def _deposited(self, row: AccountBalance, event: Deposited, stored: StoredEvent) -> None:
        row.balance += event.amount
        row.version = stored.version or 0

    @handles(TransferredIn)
    def _transferred_in(self, row: AccountBalance, event: TransferredIn, stored: StoredEvent) -> None:
        row.balance += event.amount
        row.version = stored.version or 0

    @handles(Withdrawn)
    def _withdrawn(self, row: AccountBalance, event: Withdrawn, stored: StoredEvent) -> None:
        row.balance -= event.amount
        row.version = stored.version or 0

    @handles(TransferredOut)
    def _transferred_out(self, row: AccountBalance, event: TransferredOut, stored: StoredEvent) -> None:
        row.balance -= event.amount
        row.version = stored.version or 0

    @handles(Closed)
    def _closed(self, row: AccountBalance, event: Closed, stored: StoredEvent) -> None:
        row.closed = True
        row.version = stored.version or 0


class ActivityProjector(RowProjector):
    """Money in and out per account, through a subscription; alerts on large withdrawals (not on replay)."""

    name: ClassVar[str] = "accounts.activity"
    mode = "async"
    description: ClassVar[str] = "Money in and out per account (async)"
    model = AccountActivity
    key_field: ClassVar[str] = "account_id"
    stream_types: ClassVar[frozenset[str]] = frozenset({"account"})

    def _seen(self, row: AccountActivity, stored: StoredEvent) -> None:
        row.events += 1
        row.last_position = stored.position

    @handles(Opened)
    def _opened(self, row: AccountActivity, event: Opened, stored: StoredEvent) -> None:
        self._seen(row, stored)

    @handles(Closed)
    def _closed(self, row: AccountActivity, event: Closed, stored: StoredEvent) -> None:
        self._seen(row, stored)

    @handles(Deposited)
    def _deposited(self, row: AccountActivity, event: Deposited, stored: StoredEvent) -> None:
        row.deposits += 1
        row.total_in += event.amount
        self._seen(row, stored)

    @handles(TransferredIn)
    def _transferred_in(self, row: AccountActivity, event: TransferredIn, stored: StoredEvent) -> None:
        row.transfers += 1
        row.total_in += event.amount
        self._seen(row, stored)

    @handles(Withdrawn)
    def _withdrawn(self, row: AccountActivity, event: Withdrawn, stored: StoredEvent) -> None:
        row.withdrawals += 1
        row.total_out += event.amount
        self._seen(row, stored)
        if event.amount >= LARGE_WITHDRAWAL:
            account, amount, position = stored.stream_id, event.amount, stored.position

            def alert() -> None:
                emit(LARGE_WITHDRAWAL_ALERT, account=account, amount=amount, position=position)

            self.side_effect(alert)

    @handles(TransferredOut)
    def _transferred_out(self, row: AccountActivity, event: TransferredOut, stored: StoredEvent) -> None:
        row.transfers += 1
        row.total_out += event.amount
        self._seen(row, stored)


# --- write functions the console and the seed call ------------------------------------------------------


def account_open(*, owner: str, actor: Any, currency: str = "EUR", account_id: str | None = None) -> Account:
    account = Account.open(owner=owner, currency=currency, account_id=account_id)
    repository.save(account, actor=actor)
    return account


def account_deposit(*, account_id: str, amount: int, actor: Any) -> list[Record]:
    account = repository.load(account_id, cls=Account)
    account.deposit(amount)
    return repository.save(account, actor=actor)


def account_withdraw(*, account_id: str, amount: int, actor: Any) -> list[Record]:
    account = repository.load(account_id, cls=Account)
    account.withdraw(amount)
    return repository.save(account, actor=actor)


def account_transfer(*, from_account: str, to_account: str, amount: int, actor: Any) -> list[Record]:
    source = repository.load(from_account, cls=Account)
    target = repository.load(to_account, cls=Account)
    source.transfer_to(target, amount)
    return repository.save(source, target, actor=actor)
