"""Job start-up: runs forked from the worker's warm runner against fresh ``manage.py`` processes.

Everything runs in a child process on a scratch PostgreSQL database with a RedisHuey queue of its own (SQLite
and SqliteHuey under a temporary directory when no PostgreSQL server answers), with real ``run_huey``
consumers, one thread each, so no development data is touched.

1. Latency: a logged-in POST to ``/jobs/demo_report/`` until its first output line is stored, warm runner on;
   the peer is ``python manage.py demo_report`` started bare, timed to its first line on stdout, interleaved.
2. Throughput: 20 short runs (``demo_report``) queued at once, until all have ended: one worker process with
   fresh children, one with the warm runner, two with the warm runner.
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

from bench.bench_jobs import _first_line_seconds
from bench.postgres import PG_URL, create_database, drop_database

ROUNDS = int(os.environ.get("BENCH_JOBS_START_ROUNDS", "7"))
RUNS = int(os.environ.get("BENCH_JOBS_START_RUNS", "20"))
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
COMMAND = ("demo_report", "Q1", "build")


def _workers(count: int, *, warm: bool) -> list[subprocess.Popen[bytes]]:
    from console.core.processes import child_env, manage_argv

    env = child_env(CONSOLE_JOBS_WARM_START="1" if warm else "0")
    argv = manage_argv("run_huey", "--workers", "1", "--worker-type", "thread", "--delay", "0.02", "--max-delay", "0.1")
    return [
        subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _ in range(count)
    ]


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for worker in workers:
        # The worker's group holds its warm runner too.
        os.killpg(worker.pid, 15)
    for worker in workers:
        worker.wait(timeout=60)


def _batch(user: Any, count: int) -> float:
    """Queue ``count`` runs at once; seconds until every one has ended (each must succeed)."""
    from console.jobs.catalog import lookup
    from console.jobs.introspect import Token
    from console.jobs.models import JobRun, Status
    from console.jobs.services import job_start

    info = lookup(COMMAND[0])
    started = time.perf_counter()
    ids = [job_start(actor=user, info=info, tokens=[Token(value) for value in COMMAND[1:]]).pk for _ in range(count)]
    while JobRun.objects.filter(pk__in=ids).exclude(status__in=[Status.SUCCEEDED, Status.FAILED]).exists():
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    failed = JobRun.objects.filter(pk__in=ids).exclude(status=Status.SUCCEEDED).count()
    if failed:
        raise SystemExit(f"{failed} of {count} runs did not succeed")
    return elapsed


def _child() -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    from console.core.processes import child_env, manage_argv
    from console.jobs.models import OutputChunk

    call_command("migrate", verbosity=0)
    setup_test_environment()
    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    env = child_env()
    results: dict[str, Any] = {}

    workers = _workers(1, warm=True)
    try:
        _batch(user, 2)  # the worker's warm runner is up after this
        bare: list[float] = []
        stored: list[float] = []
        for _ in range(ROUNDS):
            # Interleaved, so both see the same load on a shared machine.
            bare.append(_first_line_seconds(manage_argv(*COMMAND), env))
            started = time.perf_counter()
            response = client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"})
            run_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
            while not OutputChunk.objects.filter(run_id=run_id, stream="out").exists():
                time.sleep(0.005)
            stored.append(time.perf_counter() - started)
            _wait_final(run_id)
        results["bare"] = statistics.median(bare)
        results["stored"] = statistics.median(stored)
        results["stored_all"] = stored
    finally:
        _stop(workers)

    for name, count, warm in (("fresh_1", 1, False), ("warm_1", 1, True), ("warm_2", 2, True)):
        workers = _workers(count, warm=warm)
        try:
            _batch(user, 2 * count)  # every worker has started (and its warm runner)
            results[name] = _batch(user, RUNS)
        finally:
            _stop(workers)
    print(json.dumps(results))


def _wait_final(run_id: int) -> None:
    from console.jobs.models import JobRun

    while not JobRun.objects.get(pk=run_id).is_final:
        time.sleep(0.01)


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bench-jobs-start-") as tmp:
        env = {
            **os.environ,
            "CONSOLE_VAR_DIR": tmp,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CONSOLE_TASKS": "huey",
            "CONSOLE_HUEY_NAME": f"bench-jobs-start-{uuid.uuid4().hex[:8]}",
            "DEBUG": "0",
            "LOG_LEVEL": "ERROR",
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        database = create_database("bench_jobs_start")
        if database is not None:
            env["DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + "/" + database
            env["REDIS_URL"] = REDIS_URL
        try:
            done = subprocess.run(
                [sys.executable, "-m", "bench.bench_jobs_start", "child"],
                env=env,
                cwd=root,
                capture_output=True,
                text=True,
            )
        finally:
            if database is not None:
                drop_database(database)
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit("bench_jobs_start child failed")
        r = json.loads(done.stdout.strip().splitlines()[-1])

    where = "PostgreSQL + RedisHuey" if database is not None else "SQLite + SqliteHuey"
    print(
        f"{where}, `run_huey` consumers with one thread each; latency: median of {ROUNDS} rounds; "
        f"throughput: {RUNS} `demo_report` runs queued at once; load average at the end: {os.getloadavg()[0]:.1f}.\n"
    )
    print("| measure | console | peer | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| POST -> first line stored, warm runner | {r['stored']:.3f} s | bare `manage.py demo_report` first line "
        f"{r['bare']:.3f} s | {r['bare'] / r['stored']:.1f}x faster |"
    )
    rates = {name: RUNS / r[name] for name in ("fresh_1", "warm_1", "warm_2")}
    print(
        f"| {RUNS} runs, one worker, warm runner | {r['warm_1']:.2f} s ({rates['warm_1']:.2f} runs/s) | fresh "
        f"processes {r['fresh_1']:.2f} s ({rates['fresh_1']:.2f} runs/s) | {rates['warm_1'] / rates['fresh_1']:.1f}x |"
    )
    print(
        f"| {RUNS} runs, two workers, warm runner | {r['warm_2']:.2f} s ({rates['warm_2']:.2f} runs/s) | one worker "
        f"{r['warm_1']:.2f} s | {rates['warm_2'] / rates['warm_1']:.2f}x |"
    )
    print("\nPOST -> first line stored, every round: " + ", ".join(f"{s:.3f}" for s in r["stored_all"]))


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child()
    else:
        main()
