"""Retention benchmark: prune 1,000,000 output chunks while a runner appends output to another run.

In a child process on a fresh PostgreSQL database (``BENCH_DATABASE_URL``) and on SQLite: a finished run
past ``KEEP_RUNS_DAYS`` with 1,000,000 one-line chunks is deleted by the retention duty (``PRUNE_BATCH``
chunks per transaction) while a thread appends a chunk to a live run every 10 ms, each append a transaction
that inserts the chunk and moves the run's counters, as the runner's flush does. The figure is the longest
append (its stall); the peer is the same appender with nothing else running. Target: no append blocked for
more than 100 ms. The duration of each delete statement (each batch, and the run row's at the end) is shown
too. The 1,000,000 chunks are written by one INSERT ... SELECT and checkpointed before anything is measured,
so neither measurement pays for writing out the fill.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from bench.postgres import create_database, drop_database, run_child

CHUNKS = 1_000_000
PEER_SECONDS = 5.0


def _child() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, connections, transaction
    from django.db.models import F
    from django.utils import timezone

    from console.jobs.conf import jobs_settings
    from console.jobs.models import JobRun, OutputChunk, Status
    from console.jobs.retention import delete_old_runs

    call_command("migrate", verbosity=0)
    old = JobRun.objects.create(
        command="demo_flood",
        status=Status.SUCCEEDED,
        finished_at=timezone.now() - timedelta(days=365),
        line_count=CHUNKS,
        last_seq=CHUNKS,
    )
    table = OutputChunk._meta.db_table
    began = time.perf_counter()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (run_id, seq, stream, text, lines) "
                "SELECT %s, n, 'out', 'line ' || n, 1 FROM generate_series(1, %s) AS n",
                [old.pk, CHUNKS],
            )
        else:
            cursor.execute(
                f"WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < %s) "
                f"INSERT INTO {table} (run_id, seq, stream, text, lines) SELECT %s, n, 'out', 'line ' || n, 1 FROM s",
                [CHUNKS, old.pk],
            )
        # The fill's dirty pages are written out now, not by a checkpoint during the measurements.
        cursor.execute("CHECKPOINT" if connection.vendor == "postgresql" else "PRAGMA wal_checkpoint(TRUNCATE)")
    seeded = time.perf_counter() - began
    live = JobRun.objects.create(command="demo_import", status=Status.RUNNING, started_at=timezone.now())

    def appender(stop: threading.Event, stalls: list[float]) -> None:
        while not stop.is_set():
            started = time.perf_counter()
            with transaction.atomic():
                seq = JobRun.objects.filter(pk=live.pk).values_list("last_seq", flat=True)[0] + 1
                OutputChunk.objects.create(run=live, seq=seq, text=f"append {seq}", lines=1)
                JobRun.objects.filter(pk=live.pk).update(
                    last_seq=seq, line_count=F("line_count") + 1, heartbeat_at=timezone.now()
                )
            stalls.append(time.perf_counter() - started)
            time.sleep(0.01)
        connections.close_all()

    def measure(work: Any) -> tuple[list[float], float]:
        stop, stalls = threading.Event(), []  # type: ignore[var-annotated]
        thread = threading.Thread(target=appender, args=(stop, stalls))
        thread.start()
        began = time.perf_counter()
        work()
        elapsed = time.perf_counter() - began
        stop.set()
        thread.join()
        return stalls, elapsed

    peer, _ = measure(lambda: time.sleep(PEER_SECONDS))
    # Deleting old runs is opt-in (KEEP_RUNS_DAYS defaults to 0, kept for ever): the bench opts in.
    conf = dataclasses.replace(jobs_settings(), keep_runs_days=90)
    pruned: list[tuple[int, int]] = []
    batches: list[float] = []
    stalls, seconds = measure(lambda: pruned.append(delete_old_runs(conf, time.monotonic() + 3600, batches)))
    assert pruned == [(1, CHUNKS)], pruned
    assert not OutputChunk.objects.filter(run_id=old.pk).exists()

    def summary(values: list[float]) -> dict[str, float]:
        ordered = sorted(values)
        return {
            "n": len(values),
            "max": ordered[-1],
            "p99": ordered[int(len(ordered) * 0.99) - 1] if len(ordered) > 1 else ordered[-1],
            "median": statistics.median(values),
        }

    print(
        json.dumps(
            {
                "seeded": seeded,
                "prune_seconds": seconds,
                "batch": conf.prune_batch,
                "with_prune": summary(stalls),
                "alone": summary(peer),
                "batches": summary(batches),
                "load": os.getloadavg()[0],
            }
        )
    )


def main() -> None:
    print(f"load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}\n")
    print(f"Pruning {CHUNKS:,} output chunks while a runner appends every 10 ms (target: no append > 100 ms).\n")
    print(
        "| database | prune time | chunks/s | batches: n, longest, median | appends | longest append | p99 | median "
        "| alone: longest / p99 | load |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    pg_name = create_database("bench_retention")
    for label, name in (("PostgreSQL", pg_name), ("SQLite", None)):
        if label == "PostgreSQL" and name is None:
            print("| PostgreSQL | not measured: no server at BENCH_DATABASE_URL | | | | | | | | |")
            continue
        try:
            r = run_child("bench_retention", name)
        finally:
            if name:
                drop_database(name)
        w, a, b = r["with_prune"], r["alone"], r["batches"]
        print(
            f"| {label} (batch {r['batch']:,}) | {r['prune_seconds']:.1f} s | {CHUNKS / r['prune_seconds']:,.0f} | "
            f"{b['n']:,}, {b['max'] * 1000:.0f} ms, {b['median'] * 1000:.1f} ms | "
            f"{w['n']:,} | {w['max'] * 1000:.0f} ms | {w['p99'] * 1000:.0f} ms | {w['median'] * 1000:.1f} ms | "
            f"{a['max'] * 1000:.0f} ms / {a['p99'] * 1000:.0f} ms | {r['load']:.1f} |"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child()
    else:
        main()
