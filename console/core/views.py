from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from django.contrib import messages
from django.db import DatabaseError, connection, transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from console.core import backends, services
from console.core.auth import require_perm, staff_required
from console.core.conf import core_settings
from console.core.http import ConsoleRequest, page, piece
from console.core.models import MaintenanceTick, Operation, WorkerHeartbeat
from console.core.registry import OperationKind, registry
from console.core.tasks import heartbeat

log = structlog.get_logger(__name__)

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
    return piece(request, "core/dashboard.html#worker", worker_context())


@dataclass(frozen=True)
class Check:
    """One component of /healthz: whether it is fine, what it looks like, and why it is not."""

    name: str
    ok: bool
    detail: str
    problem: str = ""


def health_checks() -> list[Check]:
    """Database, queue, worker and maintenance tick; stops after the database when that is unreachable."""
    conf = core_settings()
    checks: list[Check] = []

    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        log.warning("healthz: the database is unreachable", error=f"{exc.__class__.__name__}: {exc}")
        return [Check("database", False, "unreachable", f"{exc.__class__.__name__}: {exc}")]
    checks.append(Check("database", True, f"ok ({(time.perf_counter() - started) * 1000:.1f} ms)"))

    if backends.runs_inline():
        checks.append(Check("queue", True, "inline (tasks run in the request; no queue)"))
        checks.append(Check("worker", True, "inline (no worker needed)"))
    elif backends.never_runs():
        checks.append(
            Check(
                "queue",
                False,
                "never run (the task backend only records tasks)",
                f"{backends.backend_path()} never runs tasks: jobs and messages would wait for ever",
            )
        )
    else:
        try:
            depth = backends.queue_depth()
            checks.append(Check("queue", True, "ok" if depth is None else f"ok ({depth} waiting)"))
        except Exception as exc:
            log.warning("healthz: the queue is unreachable", error=f"{exc.__class__.__name__}: {exc}")
            checks.append(Check("queue", False, "unreachable", f"{exc.__class__.__name__}: {exc}"))
        worker = WorkerHeartbeat.objects.latest_seen()
        if worker is None:
            checks.append(Check("worker", False, "never seen", "no worker has ever picked up a task"))
        elif worker.age_seconds > conf.worker_stale_seconds:
            seen = f"last seen {worker.age_seconds} s ago"
            checks.append(Check("worker", False, seen, seen))
        else:
            checks.append(Check("worker", True, f"ok (last seen {worker.age_seconds} s ago)"))

    tick = MaintenanceTick.objects.latest_run()
    if tick is None:
        # Not yet a problem: a site that just started has not ticked; one that ticked and stopped has.
        checks.append(Check("tick", True, "never ran"))
    elif tick.age_seconds > conf.tick_stale_seconds:
        ran = f"last ran {tick.age_seconds} s ago"
        checks.append(Check("tick", False, ran, f"the periodic duties {ran}"))
    else:
        checks.append(Check("tick", True, f"ok (last ran {tick.age_seconds} s ago)"))
    return checks


def _sees_detail(request: HttpRequest) -> bool:
    """Only staff learn why something is failing: exception text names hosts and ports, depths and ages
    describe the site. Reading the session needs the database, which may be what is down."""
    try:
        user = request.user
        return bool(user.is_authenticated and user.is_active and user.is_staff)
    except DatabaseError:
        return False


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when every component is fine, 503 otherwise; ``ok``/``failing`` per component, with the details
    and the problems for staff sessions."""
    checks = health_checks()
    healthy = all(check.ok for check in checks)
    body: dict[str, Any] = {"status": "ok" if healthy else "unavailable"}
    if _sees_detail(request):
        body["checks"] = {check.name: check.detail for check in checks}
        body["problems"] = [f"{check.name}: {check.problem}" for check in checks if not check.ok]
    else:
        body["checks"] = {check.name: "ok" if check.ok else "failing" for check in checks}
    return JsonResponse(body, status=200 if healthy else 503)


def _operation(request: ConsoleRequest, pk: int) -> tuple[Operation, OperationKind]:
    """The operation ``pk`` for a user allowed to see it: its kind's permission, as for starting it."""
    operation = get_object_or_404(Operation, pk=pk)
    kind = registry.operations.get(operation.kind)
    if kind is None:
        raise Http404(f"Operation #{pk} is of a kind no installed app offers ({operation.kind}).")
    require_perm(request, kind.permission)
    return operation, kind


def _operation_context(request: ConsoleRequest, operation: Operation, kind: OperationKind) -> dict[str, Any]:
    return {"operation": operation, "can_cancel": request.user.has_perm(kind.permission)}


@staff_required
@require_GET
def operation(request: ConsoleRequest, pk: int) -> HttpResponse:
    """An operation's progress: the page, or (polled by htmx) its progress piece until it ends."""
    found, kind = _operation(request, pk)
    return page(
        request,
        "core/operation.html",
        _operation_context(request, found, kind),
        fragment="core/_operation.html#operation",
        stop_polling=found.is_finished,
    )


@staff_required
@require_POST
def operation_cancel(request: ConsoleRequest, pk: int) -> HttpResponse:
    found, kind = _operation(request, pk)
    if services.cancel_operation(found, request.user):
        messages.success(request, f"Cancelling “{found.label}”: it stops after the batch it is writing.")
    else:
        messages.info(request, f"“{found.label}” had already finished or was already being cancelled.")
    if not request.htmx:
        return redirect("core:operation", pk=found.pk)
    found.refresh_from_db()
    context = _operation_context(request, found, kind)
    return page(request, "core/operation.html", context, fragment="core/_operation.html#operation")
