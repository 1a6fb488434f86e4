"""The warm runner: runs forked from one preloaded process per worker, each a fresh-looking child of its own."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection

from console.jobs import warm as warm_module
from console.jobs.models import JobRun, OutputChunk, Status
from console.jobs.runner import execute
from console.jobs.warm import ensure_started
from tests.conftest import wait_for

pytestmark = pytest.mark.django_db(transaction=True)

# What the child knows about itself, as one JSON line.
INTROSPECT = """
import json, os, random
from django.db import connection
print("SELF " + json.dumps({
    "pid": os.getpid(), "ppid": os.getppid(), "pgid": os.getpgid(0), "sid": os.getsid(0),
    "random": random.random(),
    "run_id": os.environ.get("CONSOLE_JOB_RUN_ID"),
}))
"""


def introspect(user: User) -> dict[str, Any]:
    """Run ``manage.py shell -c`` as a job (created directly: the catalog never offers ``shell``)."""
    run = JobRun.objects.create(command="shell", argv=["-c", INTROSPECT], requested_by=user)
    assert execute(run.pk) == "succeeded", list(OutputChunk.objects.filter(run=run).values_list("text", flat=True))
    text = "\n".join(OutputChunk.objects.filter(run=run).values_list("text", flat=True))
    found: dict[str, Any] = json.loads(text.split("SELF ", 1)[1].splitlines()[0])
    assert found["run_id"] == str(run.pk)
    return found


@pytest.fixture
def warm(settings: Any) -> int:
    settings.CONSOLE_JOBS = {"WARM_START": True}
    return ensure_started()


def test_runs_fork_from_one_warm_runner_as_their_own_group_with_fresh_state(operator: User, warm: int) -> None:
    first, second = introspect(operator), introspect(operator)
    for child in (first, second):
        assert child["ppid"] == warm  # forked, not a new interpreter
        assert child["pgid"] == child["sid"] == child["pid"]  # its own session and process group, as before
    assert first["pid"] != second["pid"]
    assert first["random"] != second["random"]  # random state re-seeded in each child
    assert ensure_started() == warm  # the same warm runner served both


def test_the_warm_runner_holds_no_database_connection(warm: int) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("an open SQLite database is a file descriptor to look for")
    database = Path(str(connection.settings_dict["NAME"])).resolve()
    opened = {os.path.realpath(fd) for fd in Path(f"/proc/{warm}/fd").iterdir()}
    assert not any(path.startswith(str(database)) for path in opened)


def test_a_dead_warm_runner_is_replaced_at_the_next_run(operator: User, warm: int) -> None:
    os.kill(warm, signal.SIGKILL)
    child = introspect(operator)
    assert child["ppid"] not in (warm, os.getpid())
    assert ensure_started() == child["ppid"]


def test_a_changed_environment_gets_a_new_warm_runner(warm: int, monkeypatch: pytest.MonkeyPatch) -> None:
    # Children must see the database and settings the worker sees now (tests switch databases, say).
    monkeypatch.setenv("CONSOLE_WARM_TEST_MARKER", "1")
    assert ensure_started() != warm


@pytest.mark.parametrize("jobs", [{"WARM_START": False}, {"FRESH_START": ["shell"]}, {"FRESH_START": ["*"]}])
def test_settings_send_runs_to_a_fresh_process(operator: User, settings: Any, jobs: dict[str, Any]) -> None:
    settings.CONSOLE_JOBS = jobs
    child = introspect(operator)
    assert child["ppid"] == os.getpid()  # started by this process itself, the worker here
    assert child["pgid"] == child["pid"]


def test_a_run_outlives_its_dead_warm_runner_and_ends_failed_without_an_exit_code(operator: User, warm: int) -> None:
    run = JobRun.objects.create(command="demo_import", argv=["--batches", "1", "--seconds", "2"], requested_by=operator)
    runner = threading.Thread(target=execute, args=[run.pk])
    runner.start()
    try:
        wait_for(lambda: JobRun.objects.get(pk=run.pk).line_count >= 1, timeout=30, what="first output line")
        os.kill(warm, signal.SIGKILL)
    finally:
        runner.join(timeout=60)
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.exit_code is None
    assert "warm runner that started it died" in run.note
    assert "Imported" in "\n".join(run.chunks.values_list("text", flat=True))  # the output was still all read


def test_a_process_forked_from_a_worker_starts_its_own_warm_runner(warm: int) -> None:
    # Huey's process workers are forked from the consumer: they must not share (and hold open) its warm runner.
    pid = os.fork()
    if pid == 0:
        os._exit(0 if warm_module._runner is None else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ensure_started() == warm  # the parent's is untouched
