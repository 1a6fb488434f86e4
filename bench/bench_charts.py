"""Charts benchmarks: the rollup subscriber's throughput against reading the same log alone, and the dashboard
with every chart at 1,000,000 events and 1,000,000 messages against the same dashboard without charts and
against counting one chart straight from the log.

Every measurement runs in a child process on a fresh SQLite database under a temporary directory (the
dashboard also on a scratch PostgreSQL database, ``bench.postgres``), with the inline task backend (the
dashboard's worker ping runs in the request, as it would cost a worker elsewhere).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import postgres

ROOT = Path(__file__).resolve().parent.parent
EVENTS = int(os.environ.get("BENCH_CHARTS_EVENTS", "1000000"))
MESSAGES = int(os.environ.get("BENCH_CHARTS_MESSAGES", "1000000"))
SPAN_SECONDS = 30 * 86400


# --- child side ----------------------------------------------------------------------------------------------


def _setup() -> None:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _fill_events(rows: int) -> None:
    """``rows`` events over the last 30 days: job runs, messages sent and failed, webhook attempts, sign-ins."""
    from django.db import connection

    sqlite = connection.vendor == "sqlite"
    obj = "json_object" if sqlite else "jsonb_build_object"
    boolean = "json(CASE WHEN x % 11 = 0 THEN 'false' ELSE 'true' END)" if sqlite else "(x % 11 <> 0)"
    step = SPAN_SECONDS / rows
    command = "CASE x % 3 WHEN 0 THEN 'demo_report' WHEN 1 THEN 'demo_import' ELSE 'clearsessions' END"
    kind = "CASE x % 7 WHEN 0 THEN 'message.failed' WHEN 1 THEN 'webhook.attempted' ELSE 'demo.order_placed' END"
    types = (
        f"CASE x % 5 WHEN 0 THEN 'job.finished' WHEN 1 THEN 'message.sent' WHEN 2 THEN 'auth.logged_in' ELSE {kind} END"
    )
    data = (
        "CASE x % 5"
        f" WHEN 0 THEN {obj}('run_id', x, 'command', " + command + ","
        "  'status', CASE WHEN x % 35 = 0 THEN 'failed' ELSE 'succeeded' END, 'exit_code', 0,"
        "  'seconds', (x % 50) * 0.7)"
        f" WHEN 1 THEN {obj}('message_id', x, 'message_type', 'order_confirmation', 'channel', 'email',"
        "  'attempts', 1)"
        f" WHEN 2 THEN {obj}('username', 'ops')"
        " ELSE CASE x % 7"
        f"  WHEN 0 THEN {obj}('message_id', x, 'message_type', 'password_reset', 'channel', 'email',"
        "   'failure_class', 'recipient')"
        f"  WHEN 1 THEN {obj}('endpoint_id', 1, 'delivery_id', x, 'ok', {boolean}, 'ms', x % 900)"
        f"  ELSE {obj}('order', x, 'total', 42.5) END"
        " END"
    )
    if sqlite:
        when = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (({rows} - x) * {step}) || ' seconds')"
        source = f"WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < {rows})"
        tail = "FROM cnt"
    else:
        when = f"now() - ({rows} - x) * {step} * interval '1 second'"
        source, tail = "", f"FROM generate_series(1, {rows}) AS x"
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO events_event (stream_type, stream_id, type, schema_version, data, metadata, recorded_at)"
            f" {source} SELECT '', '', {types}, 1, {data}, '{{}}', {when} {tail}"
        )
        cursor.execute("ANALYZE" if sqlite else "ANALYZE events_event")


def child_subscriber(rows: int) -> dict[str, float]:
    _setup()
    from console.events import rollups
    from console.events.models import Rollup
    from console.events.reader import cursor_of, read_records
    from console.events.subscriptions import catch_up

    _fill_events(rows)
    started = time.perf_counter()
    cursor: tuple[int | None, int] = (None, 0)
    read = 0
    while batch := read_records(cursor, limit=rollups.RollupSubscriber.batch_size):
        read += len(batch)
        cursor = cursor_of(batch[-1])
    reading = time.perf_counter() - started
    started = time.perf_counter()
    handled = catch_up(rollups.NAME)
    rolling = time.perf_counter() - started
    assert handled == rows == read, (handled, rows, read)
    return {"read_per_s": rows / reading, "rollup_per_s": rows / rolling, "buckets": Rollup.objects.count()}


def _request(path: str, user: Any) -> Any:
    from django.test import RequestFactory

    request = RequestFactory().get(path)
    request.user = user
    request.htmx = False  # type: ignore[attr-defined]
    request.session = {}  # type: ignore[assignment]
    request._messages = []  # type: ignore[attr-defined]
    return request


def _median_ms(call: Callable[[], Any], runs: int = 13) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times[2:]) * 1000


def child_dashboard(events: int, messages: int) -> dict[str, Any]:
    _setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.db.models import Count
    from django.db.models.fields.json import KT
    from django.db.models.functions import TruncDay
    from django.utils import timezone

    from bench.bench_comms import _fill as fill_messages
    from console.core import charts
    from console.core.views import dashboard
    from console.events import rollups
    from console.events.models import Event
    from console.events.subscriptions import catch_up

    _fill_events(events)
    fill_messages(connection, messages)
    catch_up(rollups.NAME)
    superuser = User.objects.create(username="bench-admin", is_staff=True, is_superuser=True)

    def render(path: str) -> None:
        response = dashboard(_request(path, superuser))
        assert response.status_code == 200, response.status_code

    results: dict[str, Any] = {}
    for slug in charts.RANGES:
        results[slug] = _median_ms(lambda slug=slug: render(f"/?range={slug}"))  # type: ignore[misc]
    saved = dict(charts.sources)
    charts.sources.clear()
    results["no charts"] = _median_ms(lambda: render("/"))
    charts.sources.update(saved)

    since = timezone.now() - timedelta(seconds=charts.RANGES["30d"].span)

    def from_log() -> None:
        rows = (
            Event.objects.filter(type="job.finished", recorded_at__gte=since)
            .annotate(day=TruncDay("recorded_at"), status=KT("data__status"))
            .values("day", "status")
            .annotate(n=Count("pk"))
        )
        assert len(list(rows)) > 0

    results["from log"] = _median_ms(from_log, runs=5)
    return results


def child(argv: list[str]) -> None:
    runners: dict[str, Callable[[], Any]] = {
        "subscriber": lambda: child_subscriber(int(argv[1])),
        "dashboard": lambda: child_dashboard(int(argv[1]), int(argv[2])),
    }
    print(json.dumps(runners[argv[0]]()))


# --- parent side ---------------------------------------------------------------------------------------------


def _run(args: list[str], database: str | None = None) -> dict[str, Any]:
    """``child *args`` in a child process, on SQLite or (``database``) on that PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix="bench-charts-") as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "LOG_LEVEL": "WARNING",
            "CONSOLE_VAR_DIR": tmp,
            "CONSOLE_TASKS": "immediate",
        }
        for name in ("PROMETHEUS_MULTIPROC_DIR", "REDIS_URL", "DATABASE_URL", "CONSOLE_DATABASE_NAME"):
            env.pop(name, None)
        if database:
            env["DATABASE_URL"] = postgres.PG_URL
            env["CONSOLE_DATABASE_NAME"] = database
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_charts", "child", *args],
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


def _on_postgres(args: list[str]) -> dict[str, Any] | None:
    """``_run(args)`` on a scratch PostgreSQL database; None when there is no server to use."""
    database = postgres.create_database("bench_charts")
    if database is None:
        return None
    try:
        return _run(args, database)
    finally:
        postgres.drop_database(database)


def _dashboard_table(vendor: str, dash: dict[str, Any]) -> None:
    base = dash["no charts"]
    print(
        f"\nDashboard server time, {EVENTS:,} events and {MESSAGES:,} messages, {vendor}, median of 11"
        " (target < 100 ms):\n"
    )
    print("| dashboard | ms | ratio to the dashboard without charts |")
    print("|---|---:|---:|")
    print(f"| without charts (panels only) | {base:.1f} | 1.00x |")
    for slug in ("1h", "24h", "7d", "30d"):
        print(f"| all charts, range {slug} | {dash[slug]:.1f} | {dash[slug] / base:.2f}x |")
    print(
        f"\nOne chart (job runs by day and status, 30 days) counted straight from the log instead: "
        f"{dash['from log']:.1f} ms ({dash['from log'] / dash['30d']:.1f}x the whole dashboard from rollups)."
    )


def main() -> None:
    # Shared machines make every figure depend on what else runs: say how busy this one was.
    print(f"load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}\n")
    sub = _run(["subscriber", str(EVENTS)])
    print(f"Rollup subscriber, {EVENTS:,} events over 30 days, SQLite (target ≥ 10,000 events/s):\n")
    print("| what | events/s | ratio to reading alone |")
    print("|---|---:|---:|")
    print(f"| reading the log in batches as records (`read_records`, the floor) | {sub['read_per_s']:,.0f} | 1.00x |")
    print(
        f"| `events.rollups` catching up (read, tally, store {sub['buckets']:,} buckets) | {sub['rollup_per_s']:,.0f}"
        f" | {sub['read_per_s'] / sub['rollup_per_s']:.2f}x slower |"
    )
    args = ["dashboard", str(EVENTS), str(MESSAGES)]
    _dashboard_table("SQLite", _run(args))
    on_postgres = _on_postgres(args)
    if on_postgres is None:
        print("\nPostgreSQL: no server at BENCH_DATABASE_URL, not measured.")
    else:
        _dashboard_table("PostgreSQL", on_postgres)
    print(f"\nload average at the end: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
