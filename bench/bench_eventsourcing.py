"""Event sourcing benchmarks against the ``eventsourcing`` library (its SQLite and PostgreSQL persistence).

Measured in the same run, on the same machine, each side in a child process on a fresh database:

- append: saving new aggregates with 1 and with 10 events per save (one transaction per save);
- load: an aggregate with 1,000 events, no snapshot (median of repeated loads);
- rebuild (console only, the library has none): replaying the log into a simple Django read model (one row
  per account) in batches of ``REBUILD_BATCH`` (the default, 10,000) with one bulk upsert per batch (median
  of three full rebuilds, the first of which has PostgreSQL analyze the freshly loaded log), beside one
  event per transaction (over the first 2,000 events).

Commit latency on a shared machine varies by tens of percent from one minute to the next, so append and
load run ``BENCH_ES_ROUNDS`` times (default 3) per database, the two sides taking turns (and turns at going
first); the table gives each side's median and the range of the per-round ratios.

The console's repository runs as in production (metadata, inline-projection dispatch, snapshot check) but
without registered subscribers, so no follow-up task is enqueued per commit; the library runs with its
defaults (JSON transcoder, no compression, no snapshots). PostgreSQL runs in a fresh database on
``BENCH_DATABASE_URL`` (default the local server); the library's PostgreSQL module needs ``psycopg_pool``,
and is reported as not measured when that package is missing.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.postgres import PG_URL, create_database, drop_database
from console.eventsourcing.conf import EventsourcingSettings

ROOT = Path(__file__).resolve().parent.parent
SAVES = int(os.environ.get("BENCH_ES_SAVES", "1000"))
LOAD_EVENTS = 1000
LOAD_REPEATS = int(os.environ.get("BENCH_ES_LOAD_REPEATS", "30"))
REBUILD_EVENTS = int(os.environ.get("BENCH_ES_REBUILD_EVENTS", "100000"))
REBUILD_SINGLE = int(os.environ.get("BENCH_ES_REBUILD_SINGLE", "2000"))
REBUILD_REPEATS = 3
ROUNDS = int(os.environ.get("BENCH_ES_ROUNDS", "3"))
ACCOUNTS = 1000


# --- child side: the console ---------------------------------------------------------------------------------


def _console_setup() -> None:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    django.setup()
    from django.core.management import call_command

    from console.events import subscriptions

    subscriptions._subscribers.clear()
    call_command("migrate", verbosity=0)


def _bench_aggregate() -> Any:
    from dataclasses import dataclass
    from typing import ClassVar

    from console.eventsourcing.domain import Aggregate, DomainEvent, applies, domain_event

    @domain_event("bench.created")
    @dataclass(frozen=True, kw_only=True)
    class Created(DomainEvent):
        """Bench aggregate created."""

        name: str

    @domain_event("bench.noted")
    @dataclass(frozen=True, kw_only=True)
    class Noted(DomainEvent):
        """Bench aggregate noted something."""

        note: str

    class Thing(Aggregate):
        stream_type: ClassVar[str] = "bench"

        @classmethod
        def create(cls, name: str) -> Thing:
            thing = cls(uuid.uuid4().hex)
            thing.trigger(Created(name=name))
            return thing

        def note(self, note: str) -> None:
            self.trigger(Noted(note=note))

        @applies(Created)
        def _created(self, event: Created) -> None:
            self.name = event.name
            self.notes: list[str] = []

        @applies(Noted)
        def _noted(self, event: Noted) -> None:
            self.notes.append(event.note)

    return Thing


def console_append_load() -> dict[str, float]:
    _console_setup()
    from console.eventsourcing import repository

    thing = _bench_aggregate()
    results: dict[str, float] = {}
    for per_save in (1, 10):
        started = time.perf_counter()
        for n in range(SAVES):
            aggregate = thing.create(f"thing {n}")
            for i in range(per_save - 1):
                aggregate.note(f"note {i}")
            repository.save(aggregate)
        results[f"append{per_save}"] = SAVES / (time.perf_counter() - started)
    big = thing.create("big")
    for i in range(LOAD_EVENTS - 1):
        big.note(f"note {i}")
        if len(big.pending()) == 100:
            repository.save(big)
    repository.save(big)
    times = []
    for _ in range(LOAD_REPEATS):
        started = time.perf_counter()
        loaded = repository.load(big.id, cls=thing)
        times.append(time.perf_counter() - started)
    assert loaded.version == LOAD_EVENTS
    results["load_ms"] = statistics.median(times) * 1000
    return results


def console_rebuild() -> dict[str, float]:
    _console_setup()
    from django.conf import settings
    from django.db import transaction

    from console.demo.models import AccountBalance
    from console.events.models import Event
    from console.eventsourcing.models import RebuildRun
    from console.eventsourcing.replay import run_rebuild
    from console.eventsourcing.services import rebuild_start

    versions = [0] * ACCOUNTS
    rows = []
    for n in range(REBUILD_EVENTS):
        account = n % ACCOUNTS
        versions[account] += 1
        opened = versions[account] == 1
        rows.append(
            Event(
                stream_type="account",
                stream_id=f"acc-{account}",
                version=versions[account],
                type="account.opened" if opened else "account.deposited",
                schema_version=2 if opened else 1,
                data={"owner": f"owner {account}", "currency": "EUR"} if opened else {"amount": 1 + n % 7},
            )
        )
    # Appended in transactions of 1,000, as writers would: on PostgreSQL "as of" follows transactions.
    for start in range(0, len(rows), 1000):
        with transaction.atomic():
            Event.objects.bulk_create(rows[start : start + 1000])
    results: dict[str, float] = {"events": REBUILD_EVENTS}

    settings.CONSOLE_EVENTSOURCING = {}
    rates = []
    for _ in range(REBUILD_REPEATS):
        run = rebuild_start(projection="accounts.balances", actor=None, enqueue=False)
        started = time.perf_counter()
        run_rebuild(run.pk)
        rates.append(REBUILD_EVENTS / (time.perf_counter() - started))
        assert AccountBalance.objects.count() == ACCOUNTS
    results["batched_per_s"] = statistics.median(rates)

    settings.CONSOLE_EVENTSOURCING = {"REBUILD_BATCH": 1}
    bound = Event.objects.order_by("position").values_list("position", flat=True)[REBUILD_SINGLE - 1]
    run = rebuild_start(projection="accounts.balances", actor=None, as_of_position=bound, enqueue=False)
    started = time.perf_counter()
    run_rebuild(run.pk)
    results["single_per_s"] = RebuildRun.objects.get(pk=run.pk).processed / (time.perf_counter() - started)
    return results


# --- child side: the eventsourcing library -------------------------------------------------------------------


def library_append_load(persistence: str, target: str) -> dict[str, float]:
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Thing(Aggregate):
        @event("Created")
        def __init__(self, name: str) -> None:
            self.name = name
            self.notes: list[str] = []

        @event("Noted")
        def note(self, note: str) -> None:
            self.notes.append(note)

    if persistence == "sqlite":
        env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": target}
    else:
        from urllib.parse import urlparse

        url = urlparse(PG_URL)
        env = {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": target,
            "POSTGRES_HOST": url.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(url.port or 5432),
            "POSTGRES_USER": url.username or "postgres",
            "POSTGRES_PASSWORD": url.password or "",
        }
    app: Application[Any] = Application(env=env)
    results: dict[str, float] = {}
    for per_save in (1, 10):
        started = time.perf_counter()
        for n in range(SAVES):
            thing = Thing(f"thing {n}")
            for i in range(per_save - 1):
                thing.note(f"note {i}")
            app.save(thing)
        results[f"append{per_save}"] = SAVES / (time.perf_counter() - started)
    big = Thing("big")
    for i in range(LOAD_EVENTS - 1):
        big.note(f"note {i}")
        if i % 100 == 98:
            app.save(big)
    app.save(big)
    times = []
    for _ in range(LOAD_REPEATS):
        started = time.perf_counter()
        loaded: Thing = app.repository.get(big.id)
        times.append(time.perf_counter() - started)
    assert loaded.version == LOAD_EVENTS
    results["load_ms"] = statistics.median(times) * 1000
    app.close()
    return results


def child(argv: list[str]) -> None:
    what = argv[0]
    if what == "console":
        print(json.dumps(console_append_load()))
    elif what == "rebuild":
        print(json.dumps(console_rebuild()))
    else:
        print(json.dumps(library_append_load(argv[1], argv[2])))


# --- parent side ---------------------------------------------------------------------------------------------


def _run(args: list[str], *, postgres: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-es-") as tmp:
        # DEBUG off, as in production: with it on, Django records and logs every query.
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "DEBUG": "0",
            "LOG_LEVEL": "WARNING",
            "CONSOLE_VAR_DIR": tmp,
        }
        env["CONSOLE_HUEY_NAME"] = "bench-es"
        for key in ("PROMETHEUS_MULTIPROC_DIR", "REDIS_URL"):
            env.pop(key, None)
        if postgres:
            env["DATABASE_URL"] = PG_URL
            env["CONSOLE_DATABASE_NAME"] = postgres
        else:
            env.pop("DATABASE_URL", None)
            env.pop("CONSOLE_DATABASE_NAME", None)
        args = [arg.replace("{tmp}", tmp) for arg in args]
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_eventsourcing", "child", *args],
            env=env,
            capture_output=True,
            text=True,
            cwd=ROOT,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{result.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def _on_postgres(args: list[str], *, library: bool = False) -> dict[str, Any] | str:
    name = create_database("bench_es")
    if name is None:
        return "not measured: no PostgreSQL server at BENCH_DATABASE_URL"
    try:
        if library:
            import importlib.util

            if importlib.util.find_spec("psycopg_pool") is None:
                return "not measured: eventsourcing.postgres needs psycopg_pool, which is not installed"
            return _run([*args, name])
        return _run(args, postgres=name)
    finally:
        drop_database(name)


def _ratio(ours: float, theirs: float, *, lower_is_better: bool = False) -> str:
    return f"{(theirs / ours if lower_is_better else ours / theirs):.2f}x"


Result = dict[str, float] | str


def _rounds(ours: Any, theirs: Any) -> tuple[list[Result], list[Result]]:
    """``ROUNDS`` measurements of each side, taking turns (and turns at going first)."""
    mine: list[Result] = []
    others: list[Result] = []
    for round_ in range(ROUNDS):
        if round_ % 2:
            others.append(theirs())
            mine.append(ours())
        else:
            mine.append(ours())
            others.append(theirs())
    return mine, others


def _median(results: list[Result], key: str) -> float | str:
    measured = [result[key] for result in results if not isinstance(result, str)]
    if not measured:
        return next(result for result in results if isinstance(result, str))
    return statistics.median(measured)


def _row(label: str, name: str, key: str, ours: list[Result], theirs: list[Result], *, lower: bool = False) -> str:
    mine, other = _median(ours, key), _median(theirs, key)
    number = "{:,.2f}" if lower else "{:,.0f}"
    if isinstance(mine, str):
        return f"| {label} | {name} | {mine} | | |"
    if isinstance(other, str):
        return f"| {label} | {name} | {number.format(mine)} | {other} | |"
    per_round = [
        (b[key] / a[key] if lower else a[key] / b[key])
        for a, b in zip(ours, theirs, strict=True)
        if not isinstance(a, str) and not isinstance(b, str)
    ]
    spread = f"{min(per_round):.2f}x to {max(per_round):.2f}x"
    ratio = _ratio(mine, other, lower_is_better=lower)
    return f"| {label} | {name} | {number.format(mine)} | {number.format(other)} | {ratio} ({spread}) |"


def main() -> None:
    sqlite_ours, sqlite_theirs = _rounds(
        lambda: _run(["console"]), lambda: _run(["library", "sqlite", "{tmp}/library.sqlite3"])
    )
    pg_ours, pg_theirs = _rounds(
        lambda: _on_postgres(["console"]), lambda: _on_postgres(["library", "postgres"], library=True)
    )

    print(
        f"Append ({SAVES:,} saves each) and load (1,000-event aggregate, median of {LOAD_REPEATS}), "
        f"medians of {ROUNDS} rounds in this run:\n"
    )
    print("| database | measure | console | `eventsourcing` 9.5 | console ÷ library, target ≥ 1.0x (rounds) |")
    print("|---|---|---:|---:|---:|")
    for label, ours, theirs in (("SQLite", sqlite_ours, sqlite_theirs), ("PostgreSQL", pg_ours, pg_theirs)):
        print(_row(label, "saves/s, 1 event per save", "append1", ours, theirs))
        print(_row(label, "saves/s, 10 events per save", "append10", ours, theirs))
        print(_row(label, "load ms, 1,000 events", "load_ms", ours, theirs, lower=True))

    print(
        f"\nRebuild of `accounts.balances` ({REBUILD_EVENTS:,} events, {ACCOUNTS:,} accounts; the library has none):\n"
    )
    batch = EventsourcingSettings().rebuild_batch
    print(
        f"| database | batched ({batch:,} per transaction), events/s | one event per transaction, events/s | speed-up |"
    )
    print("|---|---:|---:|---:|")
    for label, result in (("SQLite", _run(["rebuild"])), ("PostgreSQL", _on_postgres(["rebuild"]))):
        if isinstance(result, str):
            print(f"| {label} | {result} | | |")
        else:
            speed_up = _ratio(result["batched_per_s"], result["single_per_s"])
            print(f"| {label} | {result['batched_per_s']:,.0f} | {result['single_per_s']:,.0f} | {speed_up} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
