"""Aggregates saved to and loaded from the shared log: versions, metadata, invariants, snapshots, upcasting."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import pytest
import structlog
from django.contrib.auth.models import User
from django.db import transaction
from django.test import override_settings

from console.demo.accounts import Account, Opened
from console.demo.models import AccountBalance
from console.events.catalog import lookup
from console.events.models import Event
from console.eventsourcing import repository
from console.eventsourcing.domain import (
    Aggregate,
    ConcurrencyError,
    DomainError,
    DomainEvent,
    StreamNotFound,
    UnknownEventType,
    UpcastError,
    applies,
    domain_event,
)
from console.eventsourcing.models import Snapshot
from tests.eventsourcing.conftest import open_account


def test_it_appends_all_pending_events_with_consecutive_versions_and_metadata(operator: User) -> None:
    account = Account.open(owner="Ada", account_id="acc-1")
    account.deposit(500)
    account.withdraw(200)
    with structlog.contextvars.bound_contextvars(request_id="req-1", correlation_id="corr-1"):
        stored = repository.save(account, actor=operator, causation_id="cause-1")
    events = list(Event.objects.of_stream("acc-1"))
    assert [e.position for e in events] == [e.position for e in stored]
    assert [(e.version, e.type) for e in events] == [
        (1, "account.opened"),
        (2, "account.deposited"),
        (3, "account.withdrawn"),
    ]
    assert {e.stream_type for e in events} == {"account"}
    assert events[0].schema_version == 2
    assert events[1].data == {"amount": 500}
    assert events[0].actor_id == operator.pk
    assert events[0].metadata == {
        "request_id": "req-1",
        "correlation_id": "corr-1",
        "causation_id": "cause-1",
        "actor_id": operator.pk,
    }
    assert account.pending() == []
    assert "account.deposited" in {lookup("account.deposited").name}


def test_it_loads_the_aggregate_now_at_a_version_and_as_of_a_time(db: None) -> None:
    open_account("acc-1", deposit=1000)
    first = Event.objects.of_stream("acc-1").last()
    assert first is not None
    account = repository.load("acc-1", cls=Account)
    account.withdraw(300)
    repository.save(account)
    assert repository.load("acc-1", cls=Account).balance == 700
    assert repository.load("acc-1", at_version=2).state() == {
        "id": "acc-1",
        "version": 2,
        "owner": "Ada",
        "currency": "EUR",
        "balance": 1000,
        "closed": False,
    }
    assert repository.load("acc-1", as_of=first.recorded_at).version >= 2
    with pytest.raises(StreamNotFound):
        repository.load("acc-missing")


def test_a_command_that_breaks_an_invariant_appends_nothing(db: None) -> None:
    open_account("acc-1", deposit=100)
    account = repository.load("acc-1", cls=Account)
    before = Event.objects.count()
    with pytest.raises(DomainError, match="Insufficient funds"):
        account.withdraw(101)
    assert repository.save(account) == []
    assert Event.objects.count() == before
    assert AccountBalance.objects.get(account_id="acc-1").balance == 100


def test_a_stale_save_raises_concurrency_error_and_writes_nothing(db: None) -> None:
    open_account("acc-1", deposit=100)
    mine = repository.load("acc-1", cls=Account)
    theirs = repository.load("acc-1", cls=Account)
    other = Account.open(owner="Bob", account_id="acc-2")
    theirs.deposit(5)
    repository.save(theirs)
    mine.deposit(7)
    count = Event.objects.count()
    with pytest.raises(ConcurrencyError, match="acc-1"):
        repository.save(other, mine)
    assert Event.objects.count() == count
    assert not Event.objects.filter(stream_id="acc-2").exists()
    assert AccountBalance.objects.get(account_id="acc-1").balance == 105


def test_it_takes_snapshots_every_n_events_and_loads_from_them(db: None, django_assert_max_num_queries: Any) -> None:
    open_account("acc-1")
    account = repository.load("acc-1", cls=Account)
    for _ in range(60):
        account.deposit(1)
    repository.save(account)
    snapshot = Snapshot.objects.get(stream_id="acc-1")
    assert snapshot.version == 61
    assert snapshot.state["balance"] == 60
    # A snapshot past the requested version is not used; one at or before it is.
    assert repository.load("acc-1", at_version=10).balance == 9
    for _ in range(3):
        account.deposit(1)
    repository.save(account)
    with django_assert_max_num_queries(2):
        loaded: Account = repository.load("acc-1")
    assert (loaded.version, loaded.balance) == (64, 63)


def test_a_snapshot_of_another_schema_version_is_ignored(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    open_account("acc-1")
    account = repository.load("acc-1", cls=Account)
    for _ in range(50):
        account.deposit(2)
    repository.save(account)
    # Tamper with the snapshot so using it would show: a wrong balance proves it was read.
    Snapshot.objects.filter(stream_id="acc-1").update(state={**account.state(), "balance": -1})
    assert repository.load("acc-1").balance == -1
    monkeypatch.setattr(Account, "schema_version", 2)
    assert repository.load("acc-1").balance == 100


@override_settings(CONSOLE_EVENTSOURCING={"SNAPSHOT_EVERY": {"account": 0}})
def test_the_setting_turns_snapshots_off_per_stream_type(db: None) -> None:
    open_account("acc-1")
    account = repository.load("acc-1", cls=Account)
    for _ in range(60):
        account.deposit(1)
    repository.save(account)
    assert not Snapshot.objects.exists()


def test_it_upcasts_an_old_payload_on_read(db: None) -> None:
    # Version 1 of account.opened had no currency.
    Event.objects.create(
        stream_type="account",
        stream_id="acc-old",
        version=1,
        type="account.opened",
        schema_version=1,
        data={"owner": "Grace"},
    )
    account = repository.load("acc-old", cls=Account)
    assert (account.owner, account.currency) == ("Grace", "EUR")
    assert Opened.schema_version == 2


def test_an_unconvertible_or_unknown_event_is_a_clear_error(db: None) -> None:
    Event.objects.create(
        stream_type="account", stream_id="acc-bad", version=1, type="account.opened", schema_version=1, data={}
    )
    with pytest.raises(UpcastError, match=r"account\.opened"):
        repository.load("acc-bad", cls=Account)
    Event.objects.create(
        stream_type="account", stream_id="acc-gone", version=1, type="account.renamed", schema_version=1, data={}
    )
    with pytest.raises(UnknownEventType, match=r"account\.renamed"):
        repository.load("acc-gone", cls=Account)


@domain_event("test.nested_payload")
@dataclass(frozen=True, kw_only=True)
class NestedPayload(DomainEvent):
    """A test event whose payload nests a dataclass and a list."""

    where: Opened
    tags: list[str]


def test_payloads_are_the_fields_as_dataclasses_asdict_gives_them() -> None:
    flat = Opened(owner="Ada", currency="SEK")
    assert flat.payload() == asdict(flat) == {"owner": "Ada", "currency": "SEK"}
    nested = NestedPayload(where=flat, tags=["a"])
    assert nested.payload() == asdict(nested) == {"where": {"owner": "Ada", "currency": "SEK"}, "tags": ["a"]}
    assert nested.payload()["tags"] is not nested.tags


@domain_event("test.noted")
@dataclass(frozen=True, kw_only=True)
class Noted(DomainEvent):
    """A test note: no projection handles it."""

    text: str


class Notebook(Aggregate):
    stream_type: ClassVar[str] = "test.notebook"

    def note(self, text: str) -> None:
        self.trigger(Noted(text=text))

    @applies(Noted)
    def _noted(self, event: Noted) -> None:
        self.last = event.text


def test_a_save_with_nothing_beside_its_events_is_one_statement_and_still_all_or_nothing(
    transactional_db: None, django_assert_num_queries: Any
) -> None:
    book = Notebook("book-1")
    book.note("first")
    with django_assert_num_queries(1):
        stored = repository.save(book)
    assert [(r.stream_id, r.version, r.data) for r in stored] == [("book-1", 1, {"text": "first"})]
    mine, theirs, other = (
        repository.load("book-1", cls=Notebook),
        repository.load("book-1", cls=Notebook),
        Notebook("book-2"),
    )
    theirs.note("theirs")
    repository.save(theirs)
    mine.note("mine")
    other.note("other")
    with pytest.raises(ConcurrencyError, match="book-1"):
        repository.save(other, mine)
    assert list(Event.objects.filter(stream_type="test.notebook").values_list("stream_id", "version")) == [
        ("book-1", 2),
        ("book-1", 1),
    ]
    with transaction.atomic():  # inside a caller's transaction the save is part of it
        other.note("again")
        repository.save(other)
        transaction.set_rollback(True)
    assert not Event.objects.filter(stream_id="book-2").exists()
