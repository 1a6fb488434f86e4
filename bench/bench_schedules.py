"""Schedules benchmark: the tick creating the runs of 1,000 schedules due in the same minute.

In a child process on a fresh PostgreSQL database (``BENCH_DATABASE_URL``, default the local server) and on
SQLite: 1,000 interval schedules due at once; one tick alone, then two ticks racing in two threads (each its
own connection) on a new set. The floor is the same 1,000 runs and their 1,000 ``job.queued`` events written
with a plain ``bulk_create`` and one ``batch()`` of emits, with no schedule read, no conflict handling and no
schedule moved on: what the tick cannot avoid writing.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from datetime import timedelta
from typing import Any

from bench.postgres import create_database, drop_database, run_child

SCHEDULES = 1000


def _child() -> None:
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django.utils import timezone

    from console.events.pipeline import batch
    from console.jobs.catalog import lookup
    from console.jobs.introspect import Token
    from console.jobs.models import JobRun, Schedule
    from console.jobs.scheduler import create_due_runs
    from console.jobs.services import When, job_queued, schedule_save

    call_command("migrate", verbosity=0)
    template = schedule_save(
        actor=None,
        name="template",
        info=lookup("demo_report"),
        tokens=[Token("Q1"), Token("build")],
        when=When(interval_seconds=60),
    )
    fields = {f.attname: getattr(template, f.attname) for f in Schedule._meta.concrete_fields if not f.primary_key}

    def due_set(prefix: str) -> Any:
        now = timezone.now()
        Schedule.objects.bulk_create(
            [
                Schedule(**{**fields, "name": f"{prefix}-{i}", "next_run_at": now - timedelta(seconds=5)})
                for i in range(SCHEDULES)
            ]
        )
        return now

    Schedule.objects.filter(pk=template.pk).update(enabled=False)
    results: dict[str, Any] = {}

    # The floor: the rows and events alone.
    now = due_set("floor")
    schedules = list(Schedule.objects.filter(name__startswith="floor-"))
    began = time.perf_counter()
    with batch():
        runs = JobRun.objects.bulk_create(
            [JobRun(command=s.command, argv=s.argv, schedule=s, due_at=s.next_run_at) for s in schedules]
        )
        for run in runs:
            job_queued(run, actor=None, dispatch=False)
    results["floor"] = time.perf_counter() - began
    Schedule.objects.filter(name__startswith="floor-").update(enabled=False)

    now = due_set("alone")
    began, cpu = time.perf_counter(), time.thread_time()
    tally = create_due_runs(now)
    results["alone"] = time.perf_counter() - began
    results["alone_cpu"] = time.thread_time() - cpu
    results["alone_created"] = tally.created

    now = due_set("race")
    barrier = threading.Barrier(2)
    seconds: list[float] = []
    created: list[int] = []

    def tick() -> None:
        barrier.wait()
        started = time.perf_counter()
        created.append(create_due_runs(now).created)
        seconds.append(time.perf_counter() - started)
        connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    results["race"] = max(seconds)
    results["race_created"] = sum(created)
    results["race_rows"] = JobRun.objects.filter(schedule__name__startswith="race-").count()
    print(json.dumps(results))


def main() -> None:
    print(f"load average at start: {', '.join(f'{load:.1f}' for load in os.getloadavg())}\n")
    print(f"The tick's scheduling work for {SCHEDULES:,} schedules due in the same minute (target: < 1 s).\n")
    print("| database | one tick | its CPU | two racing ticks (slower) | runs | floor: rows + events only | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    pg_name = create_database("bench_schedules")
    for label, name in (("PostgreSQL", pg_name), ("SQLite", None)):
        if label == "PostgreSQL" and name is None:
            print("| PostgreSQL | not measured: no server at BENCH_DATABASE_URL | | | | | |")
            continue
        try:
            r = run_child("bench_schedules", name)
        finally:
            if name:
                drop_database(name)
        print(
            f"| {label} | {r['alone']:.3f} s | {r['alone_cpu']:.3f} s | {r['race']:.3f} s | "
            f"{r['race_rows']:,} of {SCHEDULES:,} | {r['floor']:.3f} s | {r['alone'] / r['floor']:.2f}x |"
        )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child()
    else:
        main()
