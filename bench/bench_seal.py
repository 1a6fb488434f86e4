"""Sealed log benchmarks on PostgreSQL: what the sealer costs appends, whether it keeps up with 10,000 events/s,
and how fast ``events verify`` reads the log.

Appends come from one writer process (transactions of ``PER_COMMIT`` events through the append path) while a
sealer process catches up in a loop (polling, or once per dispatch window as a worker does); the same writer
runs alone first and again last, in the same database, and each cost is against the mean of those two runs
(on a quiet machine the first run on the fresh table was the slowest of all, which made a sealer look free).
The writer runs unthrottled (the machine's ceiling, which the sealer shares CPU with) and paced at 10,000
events/s (the target: does the rate hold, and how far behind is the sealer).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.postgres import PG_URL, create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
APPENDS = int(os.environ.get("BENCH_SEAL_APPENDS", "100000"))
PER_COMMIT = 100
TARGET_RATE = 10_000
# console.events.subscriptions.DISPATCH_WINDOW_SECONDS (the parent does not set Django up; the child checks).
DISPATCH_WINDOW_SECONDS = 0.25


# --- child side ----------------------------------------------------------------------------------------------


def _setup() -> None:
    import django

    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    django.setup()
    from console.events import subscriptions

    # Nothing enqueues follow-up tasks: the sealer process is the only reader.
    subscriptions._subscribers.clear()


def child_migrate() -> dict[str, Any]:
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return {}


def child_writer(n: int, rate: float, go: str) -> dict[str, Any]:
    """Append ``n`` events, ``PER_COMMIT`` per transaction; paced to ``rate`` events/s when it is positive."""
    from django.db import transaction

    from console.events.append import Row, insert_rows

    while not Path(go).exists():
        time.sleep(0.005)
    metadata = {"request_id": "bench"}
    started = time.perf_counter()
    for start in range(0, n, PER_COMMIT):
        rows: list[Row] = [
            ("order", f"o-{i // 10}", None, "bench.sealed", 1, {"order": i, "total": 42.5}, metadata, None)
            for i in range(start, min(start + PER_COMMIT, n))
        ]
        with transaction.atomic():
            insert_rows(rows)
        if rate > 0:
            ahead = (start + PER_COMMIT) / rate - (time.perf_counter() - started)
            if ahead > 0:
                time.sleep(ahead)
    return {"seconds": time.perf_counter() - started, "events": n}


def child_sealer(stop: str, window: float = 0.0) -> dict[str, Any]:
    """Seal in a loop until the stop file appears and everything is sealed; reports the sealer's lag.

    With ``window`` 0 it polls, catching up again at once (every 10 ms when idle): the most a sealer can cost.
    With a window it catches up at most once per window, as a worker does when appends dispatch catch-ups
    (``subscriptions.DISPATCH_WINDOW_SECONDS``: one task per window while events keep coming).
    """
    from console.events import subscriptions
    from console.events.models import Checkpoint, Event
    from console.events.seal import SEALER, Sealer

    assert window in (0.0, subscriptions.DISPATCH_WINDOW_SECONDS), window
    subscriptions.register(Sealer())
    sealed = 0
    busy = 0.0
    worst_lag = 0
    stopped_at = None
    while True:
        started = time.perf_counter()
        handled = subscriptions.catch_up(SEALER)
        busy += time.perf_counter() - started
        sealed += handled
        checkpoint = Checkpoint.objects.filter(name=SEALER).first()
        newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
        worst_lag = max(worst_lag, newest - (checkpoint.position if checkpoint else 0))
        if stopped_at is None and Path(stop).exists():
            stopped_at = time.perf_counter()
            continue
        if stopped_at is not None and handled == 0:
            break
        if window > 0:
            time.sleep(max(0.0, window - (time.perf_counter() - started)))
        elif handled == 0:
            time.sleep(0.01)
    return {
        "sealed": sealed,
        "busy_seconds": busy,
        "drain_seconds": time.perf_counter() - (stopped_at or time.perf_counter()),
        "worst_lag_positions": worst_lag,
    }


def child_verify() -> dict[str, Any]:
    from console.events import seal

    seal.verify()  # warm the connection and the caches of the database
    result = seal.verify()
    assert result.ok, result.problems
    # The same log compared event by event, as a chunk that differs from its seals is: the floor.
    seal._Chain._intact = lambda *args: False  # type: ignore[method-assign]
    each = seal.verify()
    assert each.ok and each.checked == result.checked, each.problems
    return {
        "events": result.checked,
        "seconds": result.seconds,
        "seals": result.seals,
        "each_seconds": each.seconds,
    }


def child(argv: list[str]) -> None:
    _setup()
    what = argv[0]
    if what == "migrate":
        result = child_migrate()
    elif what == "writer":
        result = child_writer(int(argv[1]), float(argv[2]), argv[3])
    elif what == "sealer":
        result = child_sealer(argv[1], float(argv[2]) if len(argv) > 2 else 0.0)
    else:
        result = child_verify()
    print(json.dumps(result))


# --- parent side ---------------------------------------------------------------------------------------------


def _env(database: str, tmp: str) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "LOG_LEVEL": "WARNING",
        "CONSOLE_VAR_DIR": tmp,
        "CONSOLE_HUEY_NAME": "bench-seal",
        "DATABASE_URL": PG_URL,
        "CONSOLE_DATABASE_NAME": database,
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.pop("REDIS_URL", None)
    return env


def _start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.bench_seal", "child", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _result(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"{process.args!r} failed:\n{err[-3000:]}")
    parsed: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return parsed


def _append(
    env: dict[str, str], tmp: str, *, rate: float, sealing: bool, window: float = 0.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    go, stop = Path(tmp) / "go", Path(tmp) / "stop"
    go.unlink(missing_ok=True)
    stop.unlink(missing_ok=True)
    writer = _start(["writer", str(APPENDS), str(rate), str(go)], env)
    sealer = _start(["sealer", str(stop), str(window)], env) if sealing else None
    time.sleep(1.5)  # both processes set up before the clock starts
    go.touch()
    written = _result(writer)
    stop.touch()
    return written, (_result(sealer) if sealer else {})


def main() -> None:
    print(f"load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}\n")
    database = create_database("bench_seal")
    if database is None:
        print("not measured: no PostgreSQL server at BENCH_DATABASE_URL")
        return
    try:
        with tempfile.TemporaryDirectory(prefix="bench-seal-") as tmp:
            env = _env(database, tmp)
            _result(_start(["migrate"], env))
            alone, _ = _append(env, tmp, rate=0, sealing=False)
            # What the run alone wrote is sealed as a backlog first: the sealer's rate with nothing competing.
            (Path(tmp) / "stop").touch()
            backlog = _result(_start(["sealer", str(Path(tmp) / "stop")], env))
            sealed_run, sealer = _append(env, tmp, rate=0, sealing=True)
            windowed, windowed_sealer = _append(env, tmp, rate=0, sealing=True, window=DISPATCH_WINDOW_SECONDS)
            paced, paced_sealer = _append(env, tmp, rate=TARGET_RATE, sealing=True)
            # The writer alone once more, last: the runs after the first are on a larger, warmer table.
            alone_again, _ = _append(env, tmp, rate=0, sealing=False)
            verified = _result(_start(["verify"], env))
    finally:
        drop_database(database)
    first_alone, last_alone = APPENDS / alone["seconds"], APPENDS / alone_again["seconds"]
    rate_alone = (first_alone + last_alone) / 2
    rate_sealed = APPENDS / sealed_run["seconds"]
    rate_windowed = APPENDS / windowed["seconds"]
    rate_paced = APPENDS / paced["seconds"]
    print(f"Appends on PostgreSQL, {APPENDS:,} events per run in transactions of {PER_COMMIT}, one writer process:\n")
    print("| run | appends/s | cost to appends | sealer: events sealed/s busy | worst lag | drained after |")
    print("|---|---:|---:|---:|---:|---:|")
    print(
        f"| writer alone, unthrottled (first and last run; costs are against their mean) |"
        f" {first_alone:,.0f} and {last_alone:,.0f} | — | — | — | — |"
    )
    print(
        f"| writer unthrottled + sealer polling | {rate_sealed:,.0f} | {1 - rate_sealed / rate_alone:.1%} |"
        f" {sealer['sealed'] / sealer['busy_seconds']:,.0f} | {sealer['worst_lag_positions']:,} events |"
        f" {sealer['drain_seconds']:.2f} s |"
    )
    print(
        f"| writer unthrottled + sealer dispatched once per {DISPATCH_WINDOW_SECONDS} s (as a worker) |"
        f" {rate_windowed:,.0f} | {1 - rate_windowed / rate_alone:.1%} |"
        f" {windowed_sealer['sealed'] / windowed_sealer['busy_seconds']:,.0f} |"
        f" {windowed_sealer['worst_lag_positions']:,} events | {windowed_sealer['drain_seconds']:.2f} s |"
    )
    print(
        f"| writer paced at {TARGET_RATE:,}/s + sealer (target: rate held, cost < 10%) | {rate_paced:,.0f} |"
        f" {1 - rate_paced / TARGET_RATE:.1%} of the target |"
        f" {paced_sealer['sealed'] / paced_sealer['busy_seconds']:,.0f} |"
        f" {paced_sealer['worst_lag_positions']:,} events | {paced_sealer['drain_seconds']:.2f} s |"
    )
    print(
        f"\nSealing a backlog of {backlog['sealed']:,} events with no writer:"
        f" {backlog['sealed'] / backlog['busy_seconds']:,.0f} events/s"
    )
    per_s = verified["events"] / verified["seconds"]
    each_per_s = verified["events"] / verified["each_seconds"]
    print(
        f"\n`events verify` over {verified['events']:,} events in {verified['seals']:,} seals:"
        f" {per_s:,.0f} events/s (target ≥ 100,000/s); the same log compared event by event (as a chunk"
        f" that differs from its seals is): {each_per_s:,.0f} events/s, {per_s / each_per_s:.2f}x"
    )
    print(f"\nload average at end: {', '.join(f'{load:.1f}' for load in os.getloadavg())}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
