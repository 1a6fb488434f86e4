from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.core.models import MaintenanceTick, WorkerHeartbeat
from console.core.tasks import heartbeat


def test_it_names_the_task_backend_and_a_worker_never_seen(client: Client, staff: User) -> None:
    client.force_login(staff)
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "huey.contrib.djhuey.tasks_backend.HueyBackend" in body
    assert "never seen" in body
    assert 'role="status"' in body
    assert "X-CSRFToken" in body  # the CSRF header is set once, on <body>
    assert response["X-Request-ID"]


def test_it_shows_the_worker_heartbeat_age(client: Client, staff: User) -> None:
    WorkerHeartbeat.objects.create(
        worker="host:1", backend="HueyBackend", seen_at=timezone.now() - timedelta(seconds=7)
    )
    client.force_login(staff)
    body = client.get("/").content.decode()
    assert "running" in body
    assert "last seen 7 s ago" in body


def test_it_reports_a_stale_worker_as_missing(client: Client, staff: User) -> None:
    last_seen = timezone.now() - timedelta(minutes=10)
    WorkerHeartbeat.objects.create(
        worker="host:1",
        backend="HueyBackend",
        seen_at=last_seen,
        running="console.jobs.tasks.run_job",
        running_since=last_seen - timedelta(seconds=5),
    )
    client.force_login(staff)
    fragment = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
    assert "missing" in fragment
    assert "<html" not in fragment
    # It may have died mid-task: the task is what it ran when last seen, not what it runs now.
    running = fragment.split('data-testid="worker-running">')[1].split("</td>")[0]
    assert "unknown; it was running <code>console.jobs.tasks.run_job</code> when last seen" in " ".join(running.split())
    assert "since" not in running


def test_inline_mode_runs_the_heartbeat_in_the_request_and_says_so(
    client: Client, staff: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    client.force_login(staff)
    with django_capture_on_commit_callbacks(execute=True):
        body = client.get("/").content.decode()
    assert "django.tasks.backends.immediate.ImmediateBackend" in body
    assert "Tasks run inline" in body  # the banner
    assert WorkerHeartbeat.objects.exists()  # the heartbeat task ran inside the request


def test_it_says_a_backend_that_never_runs_tasks_cannot_run_jobs(client: Client, staff: User, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    client.force_login(staff)
    body = client.get("/").content.decode()
    assert "none can run" in body
    assert "never runs tasks (DummyBackend)" in body  # the banner on every page


def test_it_says_when_the_periodic_duties_have_not_run(client: Client, staff: User, settings: Any) -> None:
    client.force_login(staff)
    status = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
    assert "never ran" in status and "a Huey worker runs it every minute" in status
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    MaintenanceTick.objects.create(runner="h:1", ran_at=timezone.now() - timedelta(minutes=30))
    status = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
    assert "stopped" in status and "last ran 1800 s ago" in status
    assert "console_tick --loop" in status
    MaintenanceTick.objects.create(runner="h:2", ran_at=timezone.now(), failed=["comms.retry_due"])
    status = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
    assert "last ran 0 s ago (h:2)" in status and "1 failed" in status and "comms.retry_due" in status


def test_heartbeat_records_the_worker(db: None) -> None:
    name = heartbeat.call()
    assert WorkerHeartbeat.objects.get(worker=name).age_seconds < 5


@pytest.mark.parametrize("section", ["/jobs/", "/messages/", "/events/", "/streams/", "/projections/", "/webhooks/"])
def test_every_nav_section_answers(client: Client, staff: User, section: str) -> None:
    client.force_login(staff)
    response = client.get("/")
    assert f'href="{section}"' in response.content.decode()
    assert client.get(section).status_code == 200


def test_it_lists_each_worker_process_and_the_queue_backlog(client: Client, staff: User) -> None:
    now = timezone.now()
    WorkerHeartbeat.objects.create(
        worker="web-2:4242",
        backend="HueyBackend",
        seen_at=now - timedelta(seconds=3),
        first_seen_at=now - timedelta(hours=2),
    )
    WorkerHeartbeat.objects.create(worker="web-1:77", backend="HueyBackend", seen_at=now - timedelta(minutes=10))
    WorkerHeartbeat.objects.create(worker="gone:1", backend="HueyBackend", seen_at=now - timedelta(days=1))
    client.force_login(staff)
    fragment = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
    rows = fragment.split("<tbody>")[1]
    assert "<td>web-2</td>" in rows and "<td>4242</td>" in rows and "<td>77</td>" in rows
    assert rows.index("web-2") < rows.index("web-1") and "gone" not in rows
    assert rows.count("missing") == 1
    assert 'data-testid="queue-status"' in fragment and "waiting" in fragment


def test_it_says_how_long_the_next_task_in_the_huey_queue_has_waited(client: Client, staff: User) -> None:
    from huey.contrib.djhuey import HUEY
    from huey.contrib.djhuey.tasks_backend import KEY

    from console.core import backends

    if not backends.uses_huey():
        pytest.skip("the Huey backend's own queue")
    HUEY.flush()
    try:
        client.force_login(staff)
        fragment = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
        assert "0 waiting" in fragment and "the oldest" not in fragment
        result = heartbeat.enqueue()  # no worker runs: it waits
        record = HUEY.get(KEY % result.id, peek=True)
        record["enqueued_at"] = (timezone.now() - timedelta(seconds=90)).isoformat()
        HUEY.put_result(KEY % result.id, record)
        fragment = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
        assert "1 waiting, the oldest for 90 s" in fragment
        # A task deferred on purpose has waited only since it became due.
        record["run_after"] = (timezone.now() - timedelta(seconds=30)).isoformat()
        HUEY.put_result(KEY % result.id, record)
        fragment = client.get("/dashboard/worker", headers={"HX-Request": "true"}).content.decode()
        assert "1 waiting, the oldest for 30 s" in fragment
    finally:
        HUEY.flush()


def test_a_worker_keeps_the_time_it_was_first_seen(db: None) -> None:
    name = WorkerHeartbeat.objects.beat(backend="HueyBackend")
    first = WorkerHeartbeat.objects.get(worker=name).first_seen_at
    WorkerHeartbeat.objects.beat(backend="HueyBackend")
    seen = WorkerHeartbeat.objects.get(worker=name)
    assert first is not None and seen.first_seen_at == first and seen.seen_at > first
