from __future__ import annotations

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from console.core.auth import staff_required
from console.core.http import ConsoleRequest
from console.core.models import WorkerHeartbeat
from console.core.registry import registry
from console.core.tasks import heartbeat

# A worker that has not written a heartbeat for this long is reported as missing.
WORKER_STALE_AFTER = timedelta(seconds=150)
# The dashboard asks the worker for a fresh heartbeat at most this often.
PING_EVERY = timedelta(seconds=5)


def backend_label() -> str:
    # default_task_backend is a proxy: ask the handler for the real backend object.
    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    return f"{type(backend).__module__}.{type(backend).__name__}"


def tasks_run_inline() -> bool:
    return bool(settings.CONSOLE_TASKS == "immediate")


def ping_worker() -> None:
    """Ask a worker for a heartbeat after this transaction commits (inline mode runs it right away)."""
    latest = WorkerHeartbeat.objects.latest_seen()
    if latest is None or latest.age_seconds >= PING_EVERY.total_seconds() or tasks_run_inline():
        transaction.on_commit(heartbeat.enqueue)


@staff_required
@require_GET
def dashboard(request: ConsoleRequest) -> HttpResponse:
    ping_worker()
    panels = [(panel.template, panel.context(request)) for panel in registry.panels]
    return render(
        request,
        "core/dashboard.html",
        {
            "backend": backend_label(),
            "inline": tasks_run_inline(),
            "worker": WorkerHeartbeat.objects.latest_seen(),
            "stale_after": int(WORKER_STALE_AFTER.total_seconds()),
            "database": connection.vendor,
            "panels": panels,
        },
    )


@staff_required
@require_GET
def worker_status(request: ConsoleRequest) -> HttpResponse:
    """The dashboard's worker line, polled so a worker that starts or dies shows without a reload."""
    ping_worker()
    return render(
        request,
        "core/dashboard.html#worker",
        {
            "inline": tasks_run_inline(),
            "worker": WorkerHeartbeat.objects.latest_seen(),
            "stale_after": int(WORKER_STALE_AFTER.total_seconds()),
        },
    )


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, queue and worker: 200 when all answer, 503 with the reasons when any does not."""
    checks: dict[str, str] = {}
    problems: list[str] = []

    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = f"ok ({(time.perf_counter() - started) * 1000:.1f} ms)"
    except Exception as exc:
        checks["database"] = "unreachable"
        problems.append(f"database: {exc.__class__.__name__}: {exc}")

    if tasks_run_inline():
        checks["queue"] = "inline (tasks run in the request; no queue)"
        checks["worker"] = "inline (no worker needed)"
    else:
        try:
            from console.core.schedule import queue_depth

            checks["queue"] = f"ok ({queue_depth()} waiting)"
        except Exception as exc:
            checks["queue"] = "unreachable"
            problems.append(f"queue: {exc.__class__.__name__}: {exc}")
        if "database" not in " ".join(problems):
            worker = WorkerHeartbeat.objects.latest_seen()
            if worker is None:
                checks["worker"] = "never seen"
                problems.append("worker: no worker has ever picked up a task")
            elif worker.age_seconds > WORKER_STALE_AFTER.total_seconds():
                checks["worker"] = f"last seen {worker.age_seconds} s ago"
                problems.append(f"worker: last seen {worker.age_seconds} s ago")
            else:
                checks["worker"] = f"ok (last seen {worker.age_seconds} s ago)"

    body = {"status": "ok" if not problems else "unavailable", "checks": checks, "problems": problems}
    return JsonResponse(body, status=200 if not problems else 503)
