"""The stream browser, the projections page and its actions, and what generic read-model views share."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from console.core.auth import require_perm, staff_required
from console.core.http import ConsoleRequest, page
from console.core.inputs import whole_number
from console.events.models import Event
from console.eventsourcing import projections, repository, services
from console.eventsourcing.domain import Aggregate, UnknownEventType, UpcastError
from console.eventsourcing.forms import RebuildForm
from console.eventsourcing.models import MANAGE_PROJECTION, ProjectionState, RebuildRun
from console.eventsourcing.services import RebuildError

RECENT_WINDOW = 2000
RECENT_STREAMS = 50
STREAM_EVENTS = 1000


# --- streams ---------------------------------------------------------------------------------------------


@staff_required
@require_GET
def streams(request: ConsoleRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:200]
    recent = Event.objects.filter(version__isnull=False)
    if query:
        # No stream id holds NUL (PostgreSQL text cannot), and the database could not compare one.
        recent = recent.filter(stream_id__startswith=query) if "\x00" not in query else recent.none()
    # A bounded window of the newest events, folded into streams: no scan of the whole log.
    seen: dict[str, dict[str, Any]] = {}
    for row in recent.order_by("-position").values("stream_id", "stream_type", "version", "type", "recorded_at")[
        :RECENT_WINDOW
    ]:
        if row["stream_id"] not in seen:
            seen[row["stream_id"]] = dict(row)
            if len(seen) >= RECENT_STREAMS:
                break
    context = {"streams": list(seen.values()), "q": query, "read_models": read_model_links()}
    return render(request, "eventsourcing/streams.html", context)


def _diff(before: dict[str, Any], after: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    keys = sorted(set(before) | set(after))
    return [(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)]


@staff_required
@require_GET
def stream_detail(request: ConsoleRequest, stream_id: str) -> HttpResponse:
    events = list(Event.objects.of_stream(stream_id)[:STREAM_EVENTS])
    if not events:
        raise Http404("No such stream.")
    latest = events[-1].version or 0
    version = min(whole_number(request.GET.get("version")) or latest, latest)
    compare = whole_number(request.GET.get("compare"))
    if compare is None or compare >= latest + 1:
        compare = version - 1
    context: dict[str, Any] = {
        "stream_id": stream_id,
        "stream_type": events[0].stream_type,
        "events": events,
        "latest": latest,
        "version": version,
        "compare": compare,
        "error": "",
    }
    try:
        current: Aggregate = repository.load(stream_id, at_version=version)
        state = current.state()
        before: dict[str, Any] = {}
        if compare >= 1:
            earlier: Aggregate = repository.load(stream_id, at_version=compare)
            before = earlier.state()
        context.update(state=state, diff=_diff(before, state))
    except (UnknownEventType, UpcastError, LookupError) as exc:
        context.update(state=None, diff=[], error=str(exc))
    return page(request, "eventsourcing/stream.html", context, fragment="state")


# --- projections -----------------------------------------------------------------------------------------


def _projection_rows() -> list[dict[str, Any]]:
    runs: dict[str, list[RebuildRun]] = {}
    for run in RebuildRun.objects.exclude(status=RebuildRun.Status.DISCARDED).select_related("requested_by")[:100]:
        runs.setdefault(run.projection, []).append(run)
    live = dict(ProjectionState.objects.values_list("name", "live_generation"))
    rows = []
    for projector in projections.registered():
        mine = runs.get(projector.name, [])[:5]
        rows.append(
            {
                "status": projections.ProjectionStatus.of(projector),
                "runs": mine,
                "generation": live.get(projector.name, 0),
                "busy": any(not run.is_finished for run in mine),
            }
        )
    return rows


def _auto_id(name: str) -> str:
    return "rebuild-" + "".join(c if c.isalnum() else "-" for c in name) + "-%s"


def _projections_page(request: ConsoleRequest, *, form: RebuildForm | None = None, form_for: str = "") -> HttpResponse:
    rows = _projection_rows()
    for row in rows:
        name = row["status"].name
        row["form"] = form if form is not None and name == form_for else RebuildForm(auto_id=_auto_id(name))
    busy = any(row["busy"] for row in rows)
    context = {
        "rows": rows,
        "busy": busy,
        "form_for": form_for,
        "can_manage": request.user.has_perm(MANAGE_PROJECTION),
        "read_models": read_model_links(),
    }
    # Polling stops once no rebuild is under way.
    return page(request, "eventsourcing/projections.html", context, fragment="table", stop_polling=not busy)


@staff_required
@require_GET
def projection_list(request: ConsoleRequest) -> HttpResponse:
    return _projections_page(request)


@staff_required
@require_POST
def projection_rebuild(request: ConsoleRequest, name: str) -> HttpResponse:
    require_perm(request, MANAGE_PROJECTION)
    form = RebuildForm(request.POST, auto_id=_auto_id(name))
    if not form.is_valid():
        return _projections_page(request, form=form, form_for=name)
    data = form.cleaned_data
    try:
        run = services.rebuild_start(
            projection=name,
            actor=request.user,
            as_of_position=data["as_of_position"],
            as_of_time=data["as_of_time"],
            swap=(data["target"] == "live") if form.is_as_of else None,
        )
    except RebuildError as exc:
        form.add_error(None, str(exc))
        return _projections_page(request, form=form, form_for=name)
    messages.success(request, f"Rebuild #{run.pk} of {name} ({run.as_of_label}) is queued.")
    return redirect("eventsourcing:projections")


def _act(request: ConsoleRequest, action: Any, done: str, **kwargs: Any) -> HttpResponse:
    require_perm(request, MANAGE_PROJECTION)
    try:
        action(actor=request.user, **kwargs)
    except RebuildError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect("eventsourcing:projections")


@staff_required
@require_POST
def projection_pause(request: ConsoleRequest, name: str) -> HttpResponse:
    return _act(request, services.projection_pause, f"{name} is paused.", name=name)


@staff_required
@require_POST
def projection_resume(request: ConsoleRequest, name: str) -> HttpResponse:
    return _act(request, services.projection_resume, f"{name} is resumed.", name=name)


def _run(run_id: int) -> RebuildRun:
    return get_object_or_404(RebuildRun, pk=run_id)


@staff_required
@require_POST
def rebuild_cancel(request: ConsoleRequest, run_id: int) -> HttpResponse:
    run = _run(run_id)
    return _act(request, services.rebuild_cancel, f"Rebuild #{run.pk} is cancelled.", run_id=run.pk)


@staff_required
@require_POST
def rebuild_resume(request: ConsoleRequest, run_id: int) -> HttpResponse:
    run = _run(run_id)
    return _act(request, services.rebuild_resume, f"Rebuild #{run.pk} is resuming.", run_id=run.pk)


@staff_required
@require_POST
def rebuild_promote(request: ConsoleRequest, run_id: int) -> HttpResponse:
    run = _run(run_id)
    require_perm(request, MANAGE_PROJECTION)
    if request.POST.get("confirm") != "yes":
        messages.error(request, f"Confirm that rebuild #{run.pk} should replace the live read model.")
        return redirect("eventsourcing:projections")
    return _act(request, services.rebuild_promote, f"Rebuild #{run.pk} is now live.", run_id=run.pk)


@staff_required
@require_GET
def rebuild_compare(request: ConsoleRequest, run_id: int) -> HttpResponse:
    """A finished copy beside the live read model, row by row, differences marked."""
    run = _run(run_id)
    projector = projections.get(run.projection)
    model = getattr(projector, "model", None)
    if model is None:
        raise Http404("This projection has no single read model to compare.")
    key = projector.key_field  # type: ignore[attr-defined]  # every projector with a model is a RowProjector
    fields = [f.name for f in model._meta.concrete_fields if not f.primary_key and f.name not in ("generation", key)]
    live_generation = ProjectionState.objects.filter(name=run.projection).values_list("live_generation", flat=True)
    live = {getattr(r, key): r for r in model.generations.filter(generation__in=live_generation)[:500]}
    copy = {getattr(r, key): r for r in model.generations.filter(generation=run.generation)[:500]}
    rows = []
    for name in sorted(set(live) | set(copy)):
        a, b = live.get(name), copy.get(name)
        values = [(f, getattr(a, f, None), getattr(b, f, None)) for f in fields]
        rows.append({"key": name, "values": values, "differs": any(x != y for _, x, y in values)})
    return render(
        request,
        "eventsourcing/compare.html",
        {"run": run, "fields": fields, "rows": rows, "differing": sum(r["differs"] for r in rows)},
    )


# --- read models -----------------------------------------------------------------------------------------


def read_model_links() -> list[tuple[str, str]]:
    """(label, URL) of each registered projection's read model that has a list page, in projection order."""
    links = []
    for projector in projections.registered():
        for model in projector.read_models:
            if url := model.get_list_url():
                links.append((str(model._meta.verbose_name_plural), url))
    return links


class GenerationMixin:
    """For a generic list view of a read model: ``?generation=N`` shows a rebuild's copy instead of the live rows."""

    request: Any
    model: Any

    def get_queryset(self) -> QuerySet[Any]:
        generation = whole_number(self.request.GET.get("generation"))
        if generation is not None:
            return self.model.generations.filter(generation=generation)  # type: ignore[no-any-return]
        return self.model.objects.all()  # type: ignore[no-any-return]
