from __future__ import annotations

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from console.core.models import WorkerHeartbeat


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


def test_inline_mode_needs_no_worker(client: Client, db: None, settings: object) -> None:
    settings.CONSOLE_TASKS = "immediate"  # type: ignore[attr-defined]
    assert client.get("/healthz").status_code == 200
