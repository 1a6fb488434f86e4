"""Events benchmarks: emit cost against plain structlog, batched appends, the gapless reader under 4 concurrent
writers against the table-lock strategy, and /events/ at 1,000,000 events against Django admin's changelist.

Every measurement runs in a child process on a fresh database (SQLite under a temporary directory; PostgreSQL
in a fresh database on ``BENCH_DATABASE_URL``, default the local server, skipped with a note when it does not
answer), configured through the console's own environment-driven settings.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.postgres import PG_URL, create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
EMITS = int(os.environ.get("BENCH_EVENTS_EMITS", "50000"))
APPENDS = int(os.environ.get("BENCH_EVENTS_APPENDS", "100000"))
WRITERS = 4
PER_WRITER = int(os.environ.get("BENCH_EVENTS_PER_WRITER", "25000"))
PER_COMMIT = 10
ROWS = int(os.environ.get("BENCH_EVENTS_ROWS", "1000000"))


# --- child side ----------------------------------------------------------------------------------------------


def _setup() -> None:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    django.setup()
    from console.events import subscriptions

    # No subscribers: appends are measured without the follow-up task each commit would enqueue.
    subscriptions._subscribers.clear()


def _migrate() -> None:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _quiet_console_handler() -> None:
    """Render to /dev/null instead of the pipe: the renderer still runs, the parent is not flooded."""
    import logging

    import structlog

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and isinstance(
            handler.formatter, structlog.stdlib.ProcessorFormatter
        ):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115  # lives as long as the process


def child_emit(n: int) -> dict[str, float]:
    """Per-call cost of a declared log-only event against a plain structlog call through the same chain."""
    import structlog

    from console.events.catalog import declare
    from console.events.pipeline import emit

    _quiet_console_handler()
    declared = declare(
        "bench.order_placed",
        description="Benchmark: log-only.",
        required={"order", "total"},
        persist=False,
    )
    plain = structlog.get_logger("bench")

    def run_plain() -> float:
        started = time.perf_counter()
        for i in range(n):
            plain.info("bench.order_placed", order=i, total=42.5)
        return (time.perf_counter() - started) / n * 1e6

    def run_emit() -> float:
        started = time.perf_counter()
        for i in range(n):
            emit(declared, order=i, total=42.5)
        return (time.perf_counter() - started) / n * 1e6

    run_plain(), run_emit()  # warm both paths (logger caches, metric children)
    plain_us = statistics.median(run_plain() for _ in range(3))
    emit_us = statistics.median(run_emit() for _ in range(3))
    return {"plain_us": plain_us, "emit_us": emit_us}


def child_append(n: int) -> dict[str, float]:
    """Persisted events appended in transactions of 1,000: through emit() in batch() (each line rendered),
    through the append path batch() uses, and through the ORM's bulk_create as the baseline."""
    from django.db import transaction

    from console.events.append import insert_events
    from console.events.catalog import declare
    from console.events.models import Event
    from console.events.pipeline import batch, emit
    from console.events.reader import lock_for_append

    _migrate()
    _quiet_console_handler()
    declared = declare("bench.appended", description="Benchmark: persisted.", required={"order", "total"})
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with batch():
            for i in range(start, min(start + 1000, n)):
                emit(declared, stream_type="order", stream_id=f"o-{i // 10}", order=i, total=42.5)
    emitted = time.perf_counter() - started

    def rows(start: int) -> list[Event]:
        return [
            Event(type="bench.bulk", stream_id=f"o-{i // 10}", data={"order": i, "total": 42.5})
            for i in range(start, min(start + 1000, n))
        ]

    started = time.perf_counter()
    for start in range(0, n, 1000):
        with transaction.atomic():
            lock_for_append()
            insert_events(rows(start))
    appended = time.perf_counter() - started
    started = time.perf_counter()
    for start in range(0, n, 1000):
        with transaction.atomic():
            Event.objects.bulk_create(rows(start))
    bulk = time.perf_counter() - started
    assert Event.objects.count() == 3 * n
    return {"emit_per_s": n / emitted, "append_per_s": n / appended, "bulk_per_s": n / bulk}


def child_writer(writer: int, n: int, go: str) -> dict[str, float]:
    """One of the concurrent writers: ``n`` events, ``PER_COMMIT`` per transaction."""
    from django.db import transaction

    from console.events.catalog import declare
    from console.events.pipeline import batch, emit

    _quiet_console_handler()
    declared = declare("bench.concurrent", description="Benchmark: concurrent.", required={"w", "i"})
    while not Path(go).exists():
        time.sleep(0.01)
    started = time.time()
    for start in range(0, n, PER_COMMIT):
        with transaction.atomic(), batch():
            for i in range(start, min(start + PER_COMMIT, n)):
                emit(declared, w=writer, i=i)
    return {"start": started, "end": time.time()}


def child_concurrent(strategy: str) -> dict[str, Any]:
    """4 writer processes append while this process tails the log; counts what each reader missed or doubled."""
    from django.conf import settings
    from django.db import connections

    from console.events.models import Event
    from console.events.reader import START, cursor_of, read_batch

    settings.CONSOLE_EVENTS = {"READER": strategy}
    _migrate()
    Event.objects.all().delete()
    go = tempfile.mktemp(prefix="bench-events-go-")
    env = {**os.environ, "CONSOLE_EVENTS_BENCH_READER": strategy}
    writers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.bench_events", "child", "writer", str(w), str(PER_WRITER), go, strategy],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for w in range(WRITERS)
    ]
    seen: list[tuple[int, int]] = []
    naive_seen: list[tuple[int, int]] = []
    done = threading.Event()

    def gapless() -> None:
        cursor = START
        while True:
            finished = done.is_set()
            events = read_batch(cursor, limit=1000, types=["bench.concurrent"])
            seen.extend((e.data["w"], e.data["i"]) for e in events)
            if events:
                cursor = cursor_of(events[-1])
            elif finished:
                break
            else:
                time.sleep(0.002)
        connections.close_all()

    def naive() -> None:
        last = 0
        while not done.is_set():
            events = list(Event.objects.filter(position__gt=last).order_by("position")[:1000])
            naive_seen.extend((e.data["w"], e.data["i"]) for e in events)
            if events:
                last = events[-1].position
            else:
                time.sleep(0.002)
        connections.close_all()

    threads = [threading.Thread(target=gapless), threading.Thread(target=naive)]
    for thread in threads:
        thread.start()
    Path(go).touch()
    spans = []
    for process in writers:
        out, _ = process.communicate()
        assert process.returncode == 0, "a writer failed"
        spans.append(json.loads(out.strip().splitlines()[-1]))
    done.set()
    for thread in threads:
        thread.join()
    Path(go).unlink()
    total = WRITERS * PER_WRITER
    expected = {(w, i) for w in range(WRITERS) for i in range(PER_WRITER)}
    seconds = max(s["end"] for s in spans) - min(s["start"] for s in spans)
    return {
        "events": total,
        "per_s": total / seconds,
        "missed": len(expected - set(seen)),
        "doubled": len(seen) - len(set(seen)),
        "naive_missed": len(expected - set(naive_seen)),
    }


def _fill(rows: int) -> None:
    from django.contrib.auth.models import User
    from django.db import connection

    users = [User.objects.create(username=f"user{u}", is_staff=True).pk for u in range(10)]
    types = (
        "CASE x % 4 WHEN 0 THEN 'demo.order_placed' WHEN 1 THEN 'demo.order_shipped'"
        " WHEN 2 THEN 'auth.logged_in' ELSE 'demo.payment_failed' END"
    )
    actor = f"CASE WHEN x % 3 = 0 THEN NULL ELSE {users[0]} + (x % 10) END"
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            source = f"WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < {rows}) SELECT"
            tail = "FROM cnt"
            when = f"datetime('now', '-' || ({rows} - x) || ' seconds')"
            data = "json_object('order', x, 'total', 42.5)"
            meta = "json_object('request_id', 'r' || (x / 3))"
            stream = "'order-' || (x / 4)"
        else:
            source = "SELECT"
            tail = f"FROM generate_series(1, {rows}) AS x"
            when = f"now() - ({rows} - x) * interval '1 second'"
            data = "jsonb_build_object('order', x, 'total', 42.5)"
            meta = "jsonb_build_object('request_id', 'r' || (x / 3))"
            stream = "'order-' || (x / 4)"
        cursor.execute(
            "INSERT INTO events_event (stream_type, stream_id, type, schema_version, data, metadata, actor_id,"
            f" recorded_at) {source} 'order', {stream}, {types}, 1, {data}, {meta}, {actor}, {when} {tail}"
        )
        cursor.execute("ANALYZE" if connection.vendor == "sqlite" else "ANALYZE events_event")


def child_table(rows: int) -> dict[str, Any]:
    from django.contrib import admin
    from django.contrib.auth.models import User
    from django.test import RequestFactory

    from console.events.models import Event
    from console.events.views import event_list

    _migrate()
    _fill(rows)
    superuser = User.objects.create(username="bench-admin", is_staff=True, is_superuser=True)
    factory = RequestFactory()
    model_admin = admin.site._registry[Event]

    def median_ms(call: Any, query: str) -> float:
        times = []
        for _ in range(13):
            request = factory.get("/?" + query)
            request.user = superuser
            request.htmx = False  # type: ignore[attr-defined]
            request.session = {}  # type: ignore[assignment]
            request._messages = []  # type: ignore[attr-defined]
            started = time.perf_counter()
            response = call(request)
            if hasattr(response, "render"):
                response.render()
            times.append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
        return statistics.median(times[3:]) * 1000

    results = {}
    cases = [
        ("first page", "", ""),
        ("type filter", "type=demo.order_shipped", "type__exact=demo.order_shipped"),
        ("actor filter", "actor=user3", f"actor__id__exact={User.objects.get(username='user3').pk}"),
    ]
    for label, ours, theirs in cases:
        results[label] = {
            "console": median_ms(event_list, ours),
            "admin": median_ms(model_admin.changelist_view, theirs),
        }
    return results


def child(argv: list[str]) -> None:
    what = argv[0]
    if what == "writer":
        _setup()
        from django.conf import settings

        settings.CONSOLE_EVENTS = {"READER": argv[4]}
        print(json.dumps(child_writer(int(argv[1]), int(argv[2]), argv[3])))
        return
    _setup()
    runners: dict[str, Callable[[], Any]] = {
        "emit": lambda: child_emit(int(argv[1])),
        "append": lambda: child_append(int(argv[1])),
        "concurrent": lambda: child_concurrent(argv[1]),
        "table": lambda: child_table(int(argv[1])),
    }
    print(json.dumps(runners[what]()))


# --- parent side ---------------------------------------------------------------------------------------------


def _run(args: list[str], *, postgres: str | None = None, level: str = "INFO") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-events-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "LOG_LEVEL": level,
            "CONSOLE_VAR_DIR": tmp,
            "CONSOLE_HUEY_NAME": "bench-events",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        env.pop("REDIS_URL", None)
        if postgres:
            env["DATABASE_URL"] = PG_URL
            env["CONSOLE_DATABASE_NAME"] = postgres
        else:
            env.pop("DATABASE_URL", None)
            env.pop("CONSOLE_DATABASE_NAME", None)
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_events", "child", *args],
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


def main() -> None:
    # Shared machines make every figure depend on what else runs: say how busy this one was.
    print(f"load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}\n")
    emit = _run(["emit", str(EMITS)])
    ratio = emit["emit_us"] / emit["plain_us"]
    print(f"Emit cost, {EMITS:,} calls, rendered as JSON (to /dev/null) through the console's one structlog chain:\n")
    print("| call | µs per call | ratio to plain structlog (target ≤ 1.5x) |")
    print("|---|---:|---:|")
    print(f"| plain `structlog` `.info()` | {emit['plain_us']:.1f} | 1.00x |")
    print(f"| `emit()` of a declared log-only event (checked, counted) | {emit['emit_us']:.1f} | {ratio:.2f}x |")

    pg_append = pg_name = None
    pg_name = create_database("bench_events")
    sqlite_append = _run(["append", str(APPENDS)])
    if pg_name:
        try:
            pg_append = _run(["append", str(APPENDS)], postgres=pg_name)
        finally:
            drop_database(pg_name)
    print(f"\nPersisted appends, {APPENDS:,} events in transactions of 1,000 (target ≥ 10,000/s):\n")
    print("| database | `emit()` in `batch()`, lines rendered | append path (`insert_events`) | ORM `bulk_create` |")
    print("|---|---:|---:|---:|")
    for database, figures in (("SQLite", sqlite_append), ("PostgreSQL", pg_append)):
        if figures:
            print(
                f"| {database} | {figures['emit_per_s']:,.0f}/s | {figures['append_per_s']:,.0f}/s"
                f" | {figures['bulk_per_s']:,.0f}/s |"
            )
        else:
            print(f"| {database} | not measured: no server at BENCH_DATABASE_URL | | |")

    runs = {}
    for strategy in ("xid", "table_lock"):
        name = create_database("bench_events")
        if not name:
            break
        try:
            runs[strategy] = _run(["concurrent", strategy], postgres=name, level="WARNING")
        finally:
            drop_database(name)
    total = WRITERS * PER_WRITER
    print(
        f"\nGapless reading on PostgreSQL: {WRITERS} writer processes, {total:,} events, {PER_COMMIT} per commit,"
        " one reader tailing meanwhile (targets: 0 missed or doubled; xid ≥ 1.5x the table lock's throughput):\n"
    )
    if runs:
        print(
            "| strategy | append events/s | reader missed | reader doubled | naive `position >` tail missed | ratio |"
        )
        print("|---|---:|---:|---:|---:|---:|")
        base = runs.get("table_lock", {}).get("per_s")
        for strategy, label in (("xid", "transaction id (default)"), ("table_lock", "LOCK TABLE ... EXCLUSIVE")):
            if strategy in runs:
                r = runs[strategy]
                relative = f"{r['per_s'] / base:.2f}x" if base else "n/a"
                counts = f"{r['missed']} | {r['doubled']} | {r['naive_missed']}"
                print(f"| {label} | {r['per_s']:,.0f} | {counts} | {relative} |")
    else:
        print("not measured: no PostgreSQL server at BENCH_DATABASE_URL")

    tables = {"SQLite": _run(["table", str(ROWS)], level="WARNING")}
    pg_name = create_database("bench_events")
    if pg_name:
        try:
            tables["PostgreSQL"] = _run(["table", str(ROWS)], postgres=pg_name, level="WARNING")
        finally:
            drop_database(pg_name)
    print(
        f"\n`/events/` against Django admin's changelist for `Event`, {ROWS:,} events, median server time of 10 runs"
        " (view + template; targets: < 100 ms, ≥ 5x faster than the admin):\n"
    )
    print("| database | page | console ms | admin ms | console speed-up |")
    print("|---|---|---:|---:|---:|")
    for database, results in tables.items():
        for label, r in results.items():
            print(
                f"| {database} | {label} | {r['console']:.1f} | {r['admin']:.1f} | {r['admin'] / r['console']:.1f}x |"
            )


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
