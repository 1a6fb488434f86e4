"""Jobs benchmarks: POST-to-first-line latency against a bare ``manage.py`` start, and output capture speed.

Everything runs in a child process on a throwaway SQLite database and SqliteHuey queue under a temporary
directory, with a real ``run_huey`` consumer (thread workers), so no development data is touched.

1. Latency: a logged-in POST to ``/jobs/demo_report/`` until its first output line is stored, and until a
   browser that loaded the run page right after the POST and polls every second would show it; the floor is
   ``python manage.py demo_report`` started bare, timed to its first line on stdout.
2. Capture: ``demo_flood`` printing 100,000 and 1,000,000 short lines through the runner (its own process,
   so its peak RSS is the runner's) against the same command writing to /dev/null.
3. The run page of the million-line run against the page of a run that printed a few lines.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

POLL_UNTIL_OUTPUT = 0.25  # seconds: the run page's polling interval before the first output
ROUNDS = int(os.environ.get("BENCH_JOBS_ROUNDS", "7"))
CAPTURE_ROUNDS = int(os.environ.get("BENCH_JOBS_CAPTURE_ROUNDS", "3"))
LINES = (100_000, 1_000_000)


def _first_line_seconds(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert process.stdout is not None
    process.stdout.readline()
    elapsed = time.perf_counter() - started
    process.wait()
    return elapsed


def _child() -> None:
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db.models import Sum
    from django.test import Client
    from django.test.utils import setup_test_environment

    from console.core.processes import child_env, manage_argv
    from console.jobs.catalog import lookup
    from console.jobs.introspect import Token
    from console.jobs.models import JobRun, OutputChunk
    from console.jobs.services import job_start

    call_command("migrate", verbosity=0)
    setup_test_environment()
    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    env = child_env()
    results: dict[str, Any] = {}

    bare: list[float] = []
    worker = subprocess.Popen(
        manage_argv("run_huey", "--workers", "2", "--worker-type", "thread", "--delay", "0.05", "--max-delay", "0.25"),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        stored: list[float] = []
        visible: list[float] = []
        for round_ in range(ROUNDS + 1):
            # Interleaved with the console's rounds, so both see the same load on a shared machine.
            bare_seconds = _first_line_seconds(manage_argv("demo_report", "Q1", "build"), env)
            started = time.perf_counter()
            response = client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"})
            page_loaded = time.perf_counter()
            client.get(response["Location"])
            run_id = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
            while not OutputChunk.objects.filter(run_id=run_id, stream="out").exists():
                time.sleep(0.02)
            first = time.perf_counter()
            # The page polls every 250 ms until the first output arrives (then every second): the line shows on
            # the first poll after it was stored.
            shown = page_loaded + max(1, math.ceil((first - page_loaded) / POLL_UNTIL_OUTPUT)) * POLL_UNTIL_OUTPUT
            while not JobRun.objects.get(pk=run_id).is_final:
                time.sleep(0.02)
            if round_:  # the first round warms the worker up
                bare.append(bare_seconds)
                stored.append(first - started)
                visible.append(shown - started)
        results["bare"] = statistics.median(bare)
        results["stored"] = statistics.median(stored)
        results["visible"] = statistics.median(visible)
    finally:
        worker.terminate()
        worker.wait(timeout=30)

    for lines in LINES:
        devnull_runs: list[float] = []
        captured_runs: list[float] = []
        for _ in range(CAPTURE_ROUNDS):
            started = time.perf_counter()
            subprocess.run(
                manage_argv("demo_flood", "--lines", str(lines)), env=env, stdout=subprocess.DEVNULL, check=True
            )
            devnull_runs.append(time.perf_counter() - started)
            run = job_start(actor=user, info=lookup("demo_flood"), tokens=[Token("--lines"), Token(str(lines))])
            runner = subprocess.run(
                [sys.executable, "-m", "bench.bench_jobs", "runner", str(run.pk)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            measured = json.loads(runner.stdout.strip().splitlines()[-1])
            captured_runs.append(measured["seconds"])
        kept = OutputChunk.objects.filter(run_id=run.pk, stream="out").aggregate(total=Sum("lines"))["total"]
        results[f"capture_{lines}"] = {
            "devnull": statistics.median(devnull_runs),
            "captured": statistics.median(captured_runs),
            "rss_mb": measured["rss_mb"],
            "kept": kept,
            "chunks": OutputChunk.objects.filter(run_id=run.pk).count(),
            "status": measured["status"],
        }
    # The run page of the million-line run against the page of a run that printed a few lines.
    small = JobRun.objects.filter(command="demo_report").order_by("-pk").first()
    big = JobRun.objects.filter(command="demo_flood").order_by("-pk").first()
    assert small is not None and big is not None

    def page_seconds(run: JobRun) -> float:
        timings = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            client.get(f"/jobs/runs/{run.pk}/")
            timings.append(time.perf_counter() - started)
        return statistics.median(timings)

    results["page_big"] = page_seconds(big)
    results["page_small"] = page_seconds(small)
    print(json.dumps(results))


def _runner(run_id: int) -> None:
    import django

    django.setup()
    from console.jobs.runner import execute

    started = time.perf_counter()
    status = execute(run_id)
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "status": status}))


def main() -> None:
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
        env = {
            **os.environ,
            "CONSOLE_VAR_DIR": tmp,
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "CONSOLE_TASKS": "huey",
            "CONSOLE_HUEY_NAME": "bench-jobs",
            "DEBUG": "0",
            "LOG_LEVEL": "ERROR",
        }
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        done = subprocess.run(
            [sys.executable, "-m", "bench.bench_jobs", "child"], env=env, cwd=root, capture_output=True, text=True
        )
        if done.returncode:
            print(done.stderr[-3000:])
            raise SystemExit("bench_jobs child failed")
        r = json.loads(done.stdout.strip().splitlines()[-1])

    print(
        f"SQLite + SqliteHuey (2 thread workers, poll delay 0.05-0.25 s); latency: median of {ROUNDS} rounds, "
        f"capture: median of {CAPTURE_ROUNDS}; load average at the end: {os.getloadavg()[0]:.1f}.\n"
    )
    print("| measure | console | peer | ratio |")
    print("|---|---:|---:|---:|")
    print(
        f"| POST -> first line stored | {r['stored']:.3f} s | bare `manage.py demo_report` first line "
        f"{r['bare']:.3f} s | {r['stored'] / r['bare']:.2f}x |"
    )
    print(
        f"| POST -> first line visible (250 ms polls until output) | {r['visible']:.3f} s "
        f"| bare start {r['bare']:.3f} s | {r['visible'] / r['bare']:.2f}x |"
    )
    for lines in LINES:
        c = r[f"capture_{lines}"]
        speed = c["devnull"] / c["captured"]
        print(
            f"| {lines:,} lines captured ({c['kept']:,} kept, {c['chunks']} chunks, {c['status']}) | "
            f"{c['captured']:.2f} s | same command > /dev/null {c['devnull']:.2f} s | {speed:.2f}x speed |"
        )
    print(
        f"| run page of the 1,000,000-line run | {r['page_big'] * 1000:.0f} ms | run page of a 7-line run "
        f"{r['page_small'] * 1000:.0f} ms | {r['page_big'] / r['page_small']:.2f}x |"
    )
    for lines in LINES:
        print(f"| runner peak RSS, {lines:,} lines | {r[f'capture_{lines}']['rss_mb']:.0f} MB | | |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        _child()
    elif sys.argv[1:2] == ["runner"]:
        _runner(int(sys.argv[2]))
    else:
        main()
