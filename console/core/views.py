from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from console.core import backends
from console.core.auth import staff_required
from console.core.conf import core_settings
from console.core.http import ConsoleRequest
from console.core.models import MaintenanceTick, WorkerHeartbeat
from console.core.registry import registry
from console.core.tasks import heartbeat

# The dashboard asks the worker for a fresh heartbeat at most this often.
PING_EVERY = timedelta(seconds=5)


def ping_worker() -> None:
    """Ask a worker for a heartbeat after this transaction commits (inline backends run it right away)."""
    latest = WorkerHeartbeat.objects.latest_seen()
    if latest is None or latest.age_seconds >= PING_EVERY.total_seconds() or backends.runs_inline():
        transaction.on_commit(heartbeat.enqueue)


def worker_context() -> dict[str, Any]:
    conf = core_settings()
    return {
        "inline": backends.runs_inline(),
        "never_runs": backends.never_runs(),
        "uses_huey": backends.uses_huey(),
        "worker": WorkerHeartbeat.objects.latest_seen(),
        "stale_after": int(conf.worker_stale_seconds),
        "tick": MaintenanceTick.objects.latest_run(),
        "tick_stale_after": int(conf.tick_stale_seconds),
    }


@staff_required
@require_GET
def dashboard(request: ConsoleRequest) -> HttpResponse:
    ping_worker()
    panels = [(panel.template, panel.context(request)) for panel in registry.panels]
    return render(
        request,
        "core/dashboard.html",
        {"backend": backends.backend_path(), "database": connection.vendor, "panels": panels, **worker_context()},
    )


@staff_required
@require_GET
def worker_status(request: ConsoleRequest) -> HttpResponse:
    """The dashboard's worker line, polled so a worker that starts or dies shows without a reload."""
    ping_worker()
    return render(request, "core/dashboard.html#worker", worker_context())


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Database, queue, worker and maintenance tick: 200 when all are fine, 503 with the reasons otherwise."""
    conf = core_settings()
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
        return JsonResponse({"status": "unavailable", "checks": checks, "problems": problems}, status=503)

    if backends.runs_inline():
        checks["queue"] = "inline (tasks run in the request; no queue)"
        checks["worker"] = "inline (no worker needed)"
    elif backends.never_runs():
        checks["queue"] = "never run (the task backend only records tasks)"
        problems.append(f"queue: {backends.backend_path()} never runs tasks: jobs and messages would wait for ever")
    else:
        try:
            depth = backends.queue_depth()
            checks["queue"] = "ok" if depth is None else f"ok ({depth} waiting)"
        except Exception as exc:
            checks["queue"] = "unreachable"
            problems.append(f"queue: {exc.__class__.__name__}: {exc}")
        worker = WorkerHeartbeat.objects.latest_seen()
        if worker is None:
            checks["worker"] = "never seen"
            problems.append("worker: no worker has ever picked up a task")
        elif worker.age_seconds > conf.worker_stale_seconds:
            checks["worker"] = f"last seen {worker.age_seconds} s ago"
            problems.append(f"worker: last seen {worker.age_seconds} s ago")
        else:
            checks["worker"] = f"ok (last seen {worker.age_seconds} s ago)"

    tick = MaintenanceTick.objects.latest_run()
    if tick is None:
        # Not yet a problem: a site that just started has not ticked; one that ticked and stopped has.
        checks["tick"] = "never ran"
    elif tick.age_seconds > conf.tick_stale_seconds:
        checks["tick"] = f"last ran {tick.age_seconds} s ago"
        problems.append(f"tick: the periodic duties last ran {tick.age_seconds} s ago")
    else:
        checks["tick"] = f"ok (last ran {tick.age_seconds} s ago)"

    body = {"status": "ok" if not problems else "unavailable", "checks": checks, "problems": problems}
    return JsonResponse(body, status=200 if not problems else 503)
