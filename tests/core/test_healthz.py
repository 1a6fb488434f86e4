from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.test import Client
from django.utils import timezone

from console.core.models import MaintenanceTick, WorkerHeartbeat


def test_it_is_unavailable_without_a_worker(client: Client, db: None) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("ok")
    assert body["checks"]["queue"].startswith("ok")
    assert any(problem.startswith("worker:") for problem in body["problems"])


def test_it_is_ok_with_a_recent_worker(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ok"


def test_it_reports_a_stale_worker(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now() - timedelta(hours=1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert "last seen" in response.json()["checks"]["worker"]


def test_inline_mode_needs_no_worker(client: Client, db: None, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    assert client.get("/healthz").status_code == 200


def test_a_backend_that_never_runs_tasks_is_unavailable(client: Client, db: None, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert any("never runs tasks" in problem for problem in response.json()["problems"])


def test_a_tick_that_stopped_is_a_problem_and_one_never_run_is_not_yet(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    body = client.get("/healthz").json()
    assert body["checks"]["tick"] == "never ran" and body["status"] == "ok"
    MaintenanceTick.objects.create(runner="h:2", ran_at=timezone.now() - timedelta(hours=1))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["tick"] == "last ran 3600 s ago"
    MaintenanceTick.objects.create(runner="h:3", ran_at=timezone.now())
    assert client.get("/healthz").status_code == 200
