"""The runner: a child process per run, output in batches, stop, timeout, reaper, at most one claim."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from console.core.tick import run_tick
from console.events.models import Event
from console.eventsourcing.models import RebuildRun
from console.jobs.catalog import lookup
from console.jobs.introspect import Token
from console.jobs.models import JobRun, OutputChunk, Status
from console.jobs.runner import execute, group_alive
from console.jobs.services import job_start, job_stop
from console.jobs.warm import ensure_started
from tests.conftest import Worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True)
# A new worker's first run waits for the worker's start and, warm, its warm runner's: both slow on a busy machine.
FIRST_RUN_SECONDS = 90


@pytest.fixture(autouse=True, params=["warm", "fresh"])
def start_mode(request: pytest.FixtureRequest, settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs twice: children forked from the warm runner, and fresh ``manage.py`` children."""
    warm = request.param == "warm"
    settings.CONSOLE_JOBS = {"WARM_START": warm}
    # Workers the test starts read the standalone site's settings, which take this from the environment.
    monkeypatch.setenv("CONSOLE_JOBS_WARM_START", "1" if warm else "0")
    if warm:
        # Its start-up (seconds on a loaded machine) is paid once per worker process, not by each run timed here.
        ensure_started()
    return str(request.param)


def start(user: User, command: str, *argv: str, secret: tuple[int, ...] = ()) -> JobRun:
    tokens = [Token(value, index in secret) for index, value in enumerate(argv)]
    return job_start(actor=user, info=lookup(command), tokens=tokens, reason="test")


def output_of(run: JobRun) -> str:
    return "\n".join(OutputChunk.objects.filter(run=run).order_by("seq").values_list("text", flat=True))


def test_it_runs_the_command_and_keeps_every_line_cleaned(operator: User, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    run = start(operator, "demo_import", "--batches", "2", "--seconds", "0.2")
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED, run.note
    assert run.exit_code == 0
    text = output_of(run)
    assert "batch 1/2 imported [##########] 100%" in text
    assert "\x1b" not in text and "\r" not in text  # colours stripped, progress redraws collapsed
    assert "10%" not in text  # only the final state of each progress bar is kept
    assert "Imported 200 records from crm" in text
    assert run.line_count == text.count("\n") + 1
    assert run.worker_pid == os.getpid() and run.child_pid and run.child_pid != os.getpid()
    types = list(Event.objects.filter(stream_id=f"job-{run.pk}").order_by("position").values_list("type", "actor"))
    assert types == [("job.queued", operator.pk), ("job.started", operator.pk), ("job.finished", operator.pk)]


def test_it_marks_stderr_and_a_failing_exit(operator: User) -> None:
    run = start(operator, "demo_fail", "--ledger", "<b>north</b>")
    assert execute(run.pk) == "failed"
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.exit_code == 1
    errors = "\n".join(run.chunks.filter(stream="err").values_list("text", flat=True))
    assert "Traceback" in errors and "ReconciliationError: ledger '<b>north</b>' is out of balance" in errors
    finished = Event.objects.get(type="job.finished", stream_id=f"job-{run.pk}")
    assert finished.data["status"] == "failed" and finished.data["exit_code"] == 1


def test_a_command_reading_stdin_gets_eof_instead_of_hanging(operator: User) -> None:
    run = start(operator, "demo_fail", "--ask")
    started = time.monotonic()
    execute(run.pk)
    assert time.monotonic() - started < 30
    run.refresh_from_db()
    assert run.status == Status.FAILED
    assert "EOFError" in output_of(run)


def test_a_run_is_claimed_at_most_once(operator: User) -> None:
    run = start(operator, "demo_report", "Q1", "build")
    assert execute(run.pk) == "succeeded"
    assert execute(run.pk) == "not claimed"
    assert Event.objects.filter(type="job.started", stream_id=f"job-{run.pk}").count() == 1


def test_it_batches_output_instead_of_writing_a_row_per_line(operator: User) -> None:
    run = start(operator, "demo_flood", "--lines", "50000")
    execute(run.pk)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED
    stdout_lines = run.chunks.filter(stream="out").aggregate(total=Sum("lines"))["total"]
    assert stdout_lines == 50000
    assert run.line_count >= 50000
    assert run.chunks.count() < 60
    seqs = list(run.chunks.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1)) and run.last_seq == len(seqs)
    assert output_of(run).split("\n")[-1] == "line 49999"


def test_it_enforces_the_timeout_with_sigterm_then_sigkill(operator: User, settings: Any) -> None:
    settings.CONSOLE_JOBS = {**settings.CONSOLE_JOBS, "TIMEOUTS": {"demo_import": 1}, "STOP_GRACE_SECONDS": 1}
    run = start(operator, "demo_import", "--seconds", "60")
    started = time.monotonic()
    execute(run.pk)
    assert time.monotonic() - started < 15
    run.refresh_from_db()
    assert run.status == Status.FAILED and "Timed out after 1 s" in run.note
    assert run.exit_code == -signal.SIGTERM
    assert not group_alive(run.child_pid or 0)


def test_exclusive_commands_do_not_run_twice_at_once(operator: User, settings: Any) -> None:
    from console.jobs.services import JobConflict

    settings.CONSOLE_JOBS = {**settings.CONSOLE_JOBS, "EXCLUSIVE": ["demo_report"]}
    start(operator, "demo_report", "Q1", "build")
    with pytest.raises(JobConflict):
        start(operator, "demo_report", "Q2", "build")
    # The lock is the run itself: once the reaper (or anything else) ends it, the command may run again.
    JobRun.objects.filter(command="demo_report").update(status=Status.LOST)
    assert start(operator, "demo_report", "Q3", "build").exclusive


def test_a_secret_the_command_echoes_is_masked_in_its_output(operator: User) -> None:
    run = start(operator, "demo_report", "--api-token=hunter2", "hunter2", "build", secret=(0,))
    assert execute(run.pk) == "succeeded"
    text = output_of(run)
    assert "name: ••••••" in text and "hunter2" not in text


def test_secret_arguments_are_masked_in_the_run_and_its_events(operator: User) -> None:
    run = start(operator, "demo_report", "Q1", "--api-token", "hunter2", "build", secret=(2,))
    assert run.argv == ["Q1", "--api-token", "••••••", "build"]
    assert run.real_argv() == ["Q1", "--api-token", "hunter2", "build"]
    assert "hunter2" not in run.argv_display and "••••••" in run.argv_display
    queued = Event.objects.get(type="job.queued", stream_id=f"job-{run.pk}")
    assert "hunter2" not in str(queued.data)


def test_it_stops_a_running_job_through_a_real_worker(operator: User, worker: Worker) -> None:
    run = start(operator, "demo_import", "--seconds", "60")
    wait_for(lambda: JobRun.objects.get(pk=run.pk).line_count >= 1, timeout=FIRST_RUN_SECONDS, what="first output line")
    job_stop(actor=operator, run=JobRun.objects.get(pk=run.pk))
    wait_for(lambda: JobRun.objects.get(pk=run.pk).status == Status.CANCELLED, timeout=30, what="cancelled")
    run.refresh_from_db()
    assert run.stop_requested_by == operator
    assert not group_alive(run.child_pid or 0)
    stopped = Event.objects.get(type="job.stopped", stream_id=f"job-{run.pk}")
    assert stopped.actor_id == operator.pk


def test_a_run_whose_worker_is_killed_becomes_lost_and_its_group_dies(
    operator: User, worker: Worker, settings: Any
) -> None:
    # One batch over two minutes: after its first lines the child stays quiet, so it does not die of a broken
    # pipe when its reader goes away, like a long migration would not.
    run = start(operator, "demo_import", "--batches", "1", "--seconds", "120")
    wait_for(lambda: JobRun.objects.get(pk=run.pk).child_pid, timeout=FIRST_RUN_SECONDS, what="the child process")
    wait_for(lambda: JobRun.objects.get(pk=run.pk).line_count >= 1, timeout=30, what="first output line")
    run.refresh_from_db()
    assert run.child_pid and group_alive(run.child_pid)
    worker.kill(signal.SIGKILL)
    # The child has its own process group: the worker's death alone does not stop it.
    assert group_alive(run.child_pid)
    settings.CONSOLE_JOBS = {**settings.CONSOLE_JOBS, "LOST_AFTER_SECONDS": 1, "HEARTBEAT_SECONDS": 0.2}
    time.sleep(1.5)
    assert JobRun.objects.get(pk=run.pk).status == Status.RUNNING
    results = run_tick()
    assert str(results["jobs.reap_lost_runs"]).startswith("1 lost (1 process groups killed)")
    run.refresh_from_db()
    assert run.status == Status.LOST and "No heartbeat since" in run.note
    wait_for(lambda: not group_alive(run.child_pid or 0), timeout=10, what="the child's group to die")
    assert Event.objects.get(type="job.lost", stream_id=f"job-{run.pk}").data["child_killed"] is True


def test_an_exclusive_run_is_not_started_while_another_is_live(operator: User) -> None:
    first = start(operator, "demo_report", "Q1", "build")
    second = start(operator, "demo_report", "Q2", "build")
    JobRun.objects.filter(pk__in=[first.pk, second.pk]).update(exclusive=True)
    JobRun.objects.filter(pk=first.pk).update(status=Status.RUNNING)
    assert execute(second.pk) == "not claimed"
    second.refresh_from_db()
    assert second.status == Status.FAILED and "another run of this command" in second.note


def test_the_reaper_redispatches_runs_that_were_never_claimed(operator: User, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    settings.CONSOLE_JOBS = {**settings.CONSOLE_JOBS, "LOST_AFTER_SECONDS": 1, "HEARTBEAT_SECONDS": 0.2}
    run = JobRun.objects.create(
        command="demo_report",
        argv=["Q1", "build"],
        requested_by=operator,
        queued_at=timezone.now() - timedelta(minutes=5),
    )
    assert str(run_tick()["jobs.reap_lost_runs"]).endswith("1 re-dispatched")
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED


def processes_of_group(pgid: int) -> dict[int, tuple[bytes, bytes]]:
    """pid -> (cmdline, environ) of every process whose process group is ``pgid``."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text[text.rfind(")") + 2 :].split()
            if fields[2] == str(pgid):
                found[int(stat.parent.name)] = (
                    (stat.parent / "cmdline").read_bytes(),
                    (stat.parent / "environ").read_bytes(),
                )
        except (OSError, IndexError):
            continue
    return found


def tables_holding(text: str) -> list[str]:
    """The tables of the database with a row whose text holds ``text``."""
    holding = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")
            if any(text in str(row) for row in cursor.fetchall()):
                holding.append(table)
    return holding


def test_a_secret_never_reaches_a_command_line_or_a_table_yet_the_command_gets_it(
    operator: User, worker: Worker, start_mode: str
) -> None:
    secret = "s3cret-" + os.urandom(8).hex()
    run = start(operator, "demo_import", f"--api-key={secret}", "--batches=1", "--seconds=120", secret=(0,))
    child_pid = wait_for(
        lambda: JobRun.objects.get(pk=run.pk).child_pid, timeout=FIRST_RUN_SECONDS, what="the child process"
    )
    # The child announces the key it got, by fingerprint, before its long batch.
    fingerprint = hashlib.sha256(secret.encode()).hexdigest()[:12]
    wait_for(lambda: fingerprint in output_of(run), timeout=30, what="the command to have read its key")

    group = processes_of_group(child_pid)
    assert child_pid in group
    for cmdline, environ in group.values():
        assert secret.encode() not in cmdline and secret.encode() not in environ
    if start_mode == "warm":
        # A forked child shows its warm runner's command line, which names no run at all.
        assert group[child_pid][0].split(b"\0")[-3] == b"console_warm_runner"
    else:
        assert group[child_pid][0].split(b"\0")[-4:-1] == [b"console_job", str(run.pk).encode(), b"demo_import"]
    listing = subprocess.run(["ps", "-eww", "-o", "pid,pgid,args"], capture_output=True, text=True, check=True)
    assert str(child_pid) in listing.stdout and secret not in listing.stdout
    assert tables_holding(secret) == []
    assert tables_holding(fingerprint) == ["jobs_outputchunk"]  # the search itself finds what is there

    job_stop(actor=operator, run=JobRun.objects.get(pk=run.pk))
    wait_for(lambda: JobRun.objects.get(pk=run.pk).is_final, timeout=30, what="the run to end")
    assert tables_holding(secret) == []


def test_events_the_command_emits_name_the_requester_and_the_run(operator: User) -> None:
    run = start(operator, "projections", "rebuild", "accounts.activity")
    assert execute(run.pk) == "succeeded", output_of(run)
    requested = Event.objects.get(type="projection.rebuild_requested")
    assert requested.actor == operator and requested.metadata["job_run_id"] == run.pk
    assert RebuildRun.objects.get().requested_by == operator
