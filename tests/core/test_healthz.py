"""/healthz: 200 or 503 for anyone; why, only for staff."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.utils import timezone

from console.core.models import MaintenanceTick, WorkerHeartbeat


@pytest.fixture
def staff_client(client: Client, staff: User) -> Client:
    client.force_login(staff)
    return client


@pytest.fixture
def database_down(transactional_db: None) -> Iterator[str]:
    """The default connection pointed at a database that cannot be reached; yields what its error names."""
    saved = dict(connection.settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = "/nonexistent-healthz-directory/console.sqlite3"
        where = "/nonexistent-healthz-directory"
    else:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(port))
        where = str(port)
    yield where
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def test_it_is_unavailable_without_a_worker(staff_client: Client) -> None:
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["database"].startswith("ok")
    assert body["checks"]["queue"].startswith("ok")
    assert any(problem.startswith("worker:") for problem in body["problems"])


def test_it_is_ok_with_a_recent_worker(staff_client: Client) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    response = staff_client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "ok"


def test_it_reports_a_stale_worker(staff_client: Client) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now() - timedelta(hours=1))
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert "last seen" in response.json()["checks"]["worker"]


def test_inline_mode_needs_no_worker(client: Client, db: None, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    assert client.get("/healthz").status_code == 200


def test_a_backend_that_never_runs_tasks_is_unavailable(staff_client: Client, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert any("never runs tasks" in problem for problem in response.json()["problems"])


def test_a_tick_that_stopped_is_a_problem_and_one_never_run_is_not_yet(staff_client: Client) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now())
    body = staff_client.get("/healthz").json()
    assert body["checks"]["tick"] == "never ran" and body["status"] == "ok"
    MaintenanceTick.objects.create(runner="h:2", ran_at=timezone.now() - timedelta(hours=1))
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["checks"]["tick"] == "last ran 3600 s ago"
    MaintenanceTick.objects.create(runner="h:3", ran_at=timezone.now())
    assert staff_client.get("/healthz").status_code == 200


def test_anonymous_callers_learn_only_ok_or_failing_per_component(client: Client, db: None) -> None:
    WorkerHeartbeat.objects.create(worker="h:1", backend="x", seen_at=timezone.now() - timedelta(hours=1))
    MaintenanceTick.objects.create(runner="h:2", ran_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "queue": "ok", "worker": "failing", "tick": "ok"},
    }
    WorkerHeartbeat.objects.create(worker="h:3", backend="x", seen_at=timezone.now())
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "queue": "ok", "worker": "ok", "tick": "ok"},
    }


def test_signed_in_non_staff_get_no_detail_either(client: Client, outsider: User) -> None:
    client.force_login(outsider)
    body = client.get("/healthz").json()
    assert "problems" not in body and set(body["checks"].values()) <= {"ok", "failing"}


def test_anonymous_callers_see_no_exception_text_when_the_database_is_down(client: Client, database_down: str) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "failing"}}
    assert database_down not in response.content.decode()


def test_a_staff_session_gets_a_503_not_a_500_when_the_database_is_down(
    settings: Any, staff_client: Client, database_down: str
) -> None:
    # django-structlog's middleware (optional for a host site) reads the user before any view runs.
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if not m.startswith("django_structlog.")]
    # The session lives in the database: the staff member cannot be recognised, so sees what anyone sees.
    response = staff_client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "checks": {"database": "failing"}}


def test_load_balancers_reach_it_over_plain_http_when_the_site_redirects_to_https(
    client: Client, db: None, settings: Any
) -> None:
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/").status_code == 301
    assert client.get("/healthz").status_code == 503
