"""What each worker process runs now: recorded from the task signals, shown on the dashboard's workers table."""

from __future__ import annotations

import re
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.tasks.backends.immediate import ImmediateBackend
from django.test import Client
from django.utils import timezone
from huey.contrib.djhuey.tasks_backend import HueyBackend

from console.core import workers
from console.core.models import WorkerHeartbeat
from console.jobs.catalog import lookup
from console.jobs.introspect import Token
from console.jobs.models import JobRun, Status
from console.jobs.services import job_start, job_stop
from tests.conftest import Worker, squeezed, wait_for

# A new worker's first run waits for the worker's start: slow on a busy machine.
FIRST_RUN_SECONDS = 90


def result(task_id: str, path: str, started: Any = None) -> Any:
    return SimpleNamespace(id=task_id, task=SimpleNamespace(module_path=path), started_at=started)


@pytest.fixture(autouse=True)
def nothing_running() -> Any:
    workers._running.clear()
    yield
    workers._running.clear()


@pytest.mark.django_db
def test_a_process_records_the_first_started_of_its_tasks_and_clears_it_when_all_finish() -> None:
    early = timezone.now() - timedelta(seconds=30)
    workers.on_started(HueyBackend, result("a", "app.tasks.slow", early))
    workers.on_started(HueyBackend(alias="default", params={}), result("b", "app.tasks.quick"))
    row = WorkerHeartbeat.objects.get()
    assert (row.running, row.running_since, row.backend) == ("app.tasks.slow and 1 more", early, "HueyBackend")
    workers.on_finished(HueyBackend, result("a", "app.tasks.slow"))
    row.refresh_from_db()
    assert row.running == "app.tasks.quick" and row.running_since is not None and row.running_since > early
    workers.on_finished(HueyBackend, result("b", "app.tasks.quick"))
    workers.on_finished(HueyBackend, result("b", "app.tasks.quick"))  # sent twice: nothing left to clear
    idle = WorkerHeartbeat.objects.get()
    assert (idle.running, idle.running_since) == ("", None)


@pytest.mark.django_db
def test_tasks_run_inline_in_a_request_are_not_a_worker_running_them() -> None:
    workers.on_started(ImmediateBackend, result("a", "app.tasks.slow"))
    assert not WorkerHeartbeat.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_workers_table_shows_what_a_real_worker_runs_now_and_since_when(
    client: Client, operator: User, worker: Worker, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.CONSOLE_JOBS = {"WARM_START": False}
    monkeypatch.setenv("CONSOLE_JOBS_WARM_START", "0")
    tokens = [Token("--seconds", False), Token("60", False)]
    run = job_start(actor=operator, info=lookup("demo_import"), tokens=tokens, reason="test")
    wait_for(lambda: JobRun.objects.get(pk=run.pk).line_count >= 1, timeout=FIRST_RUN_SECONDS, what="first line")
    running = wait_for(
        lambda: WorkerHeartbeat.objects.filter(running="console.jobs.tasks.run_job").first(),
        timeout=10,
        what="the worker to record the run",
    )
    assert worker.process is not None and running.pid == str(worker.process.pid)  # the consumer's own process
    assert running.running_since is not None and running.running_since <= timezone.now()
    client.force_login(operator)
    page = squeezed(client.get("/").content.decode())
    since = timezone.localtime(running.running_since).strftime("%Y-%m-%d %H:%M:%S")
    # The page asks the worker for a heartbeat: that task may be running beside the run ("and 1 more").
    assert re.search(rf"<code>console\.jobs\.tasks\.run_job( and 1 more)?</code> since {since}", page), page
    job_stop(actor=operator, run=JobRun.objects.get(pk=run.pk))
    wait_for(lambda: JobRun.objects.get(pk=run.pk).status == Status.CANCELLED, timeout=30, what="cancelled")
    wait_for(
        lambda: not WorkerHeartbeat.objects.filter(running="console.jobs.tasks.run_job").exists(),
        timeout=10,
        what="the worker to clear the finished run",
    )
    assert "console.jobs.tasks.run_job" not in client.get("/").content.decode()
