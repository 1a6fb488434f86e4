from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from itertools import groupby
from typing import Any, NoReturn

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.management.base import BaseCommand, CommandError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.core import charts
from console.core.auth import staff_required
from console.core.http import ConsoleRequest, page, piece
from console.core.inputs import whole_number
from console.core.tables import TABLE_REGION, Ordering, filtered_table
from console.jobs import catalog
from console.jobs.access import APPROVE, RUN, SCHEDULE, VIEW_ALL, Access, lacking
from console.jobs.catalog import CommandInfo, UnknownCommand
from console.jobs.filters import BULK_STATUSES, JobRunFilter, JobRunTable, ScheduleFilter, ScheduleTable, bulk_targets
from console.jobs.forms import CommandForm, DecisionForm, RunMetaForm, ScheduleForm
from console.jobs.introspect import cli_preview
from console.jobs.models import JobRun, Schedule, compare_arguments
from console.jobs.output import render_chunks, tail
from console.jobs.services import (
    BULK_VERBS,
    DecisionRefused,
    JobConflict,
    for_real_tokens,
    job_approve,
    job_bulk,
    job_deny,
    job_reject,
    job_rerun,
    job_run_for_real,
    job_start,
    job_stop,
    rerun_tokens,
    schedule_run_now,
    schedule_save,
)
from console.jobs.services import (
    schedule_pause as pause_schedule,
)
from console.jobs.services import (
    schedule_resume as resume_schedule,
)
from console.jobs.vault import Unsealable


class Refused(PermissionDenied):
    """A refusal the jobs pages explain: what was refused, and which permission is missing."""


def explains_refusals(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer ``Refused`` with a 403 page that says why, rather than the site's bare 403."""

    @functools.wraps(view)
    def wrapper(request: ConsoleRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except Refused as exc:
            return render(request, "jobs/refused.html", {"why": str(exc)}, status=403)

    return wrapper


def _refuse(
    request: ConsoleRequest, command: str, why: str, *, action: str, run: JobRun | None = None, audit: bool = True
) -> NoReturn:
    """Record the attempt (unless ``audit`` is off) and answer 403 with ``why``."""
    if audit:
        job_deny(actor=request.user, command=command, why=why, run=run)
    subject = f"Run #{run.pk} of {command}" if run else command
    raise Refused(f"{subject} cannot be {action}: {why}.")


def _command(request: ConsoleRequest, name: str, *, audit: bool = True) -> CommandInfo:
    """The command if this user may run it (judged by its name); 404 when unknown, else a 403."""
    try:
        info = catalog.lookup(name)
    except UnknownCommand:
        raise Http404(f"No management command called {name!r}.") from None
    why = catalog.denial(request.user, info)
    if why is not None:
        _refuse(request, name, why, action="run from the console", audit=audit)
    return info


def _check_arguments(request: ConsoleRequest, info: CommandInfo, access: Access) -> None:
    """Arguments can put a run in a higher class than its command's name (``collectstatic --clear``)."""
    why = catalog.denial(request.user, info, access)
    if why is not None:
        _refuse(request, info.name, why, action=f"run with these arguments ({access.label})")


@staff_required
@require_GET
def command_catalog(request: ConsoleRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:100]
    commands = catalog.commands_for(request.user, query=query)
    groups = [(app, list(items)) for app, items in groupby(commands, key=lambda info: info.app_verbose_name)]
    context = {"groups": groups, "q": query, "count": len(commands), "charts": charts.region(request, "jobs")}
    return page(request, "jobs/catalog.html", context, fragment="command-list")


def _loaded(request: ConsoleRequest, info: CommandInfo) -> BaseCommand | HttpResponse:
    """The command's instance, or a 503 page saying why its own module cannot be loaded."""
    try:
        return info.load()
    except Exception as exc:  # the command's own module is broken: say so instead of failing the page
        reason = f"{exc.__class__.__name__}: {exc}"
        return render(request, "jobs/unloadable.html", {"info": info, "reason": reason}, status=503)


@staff_required
@explains_refusals
@require_http_methods(["GET", "POST"])
def command_form(request: ConsoleRequest, command: str) -> HttpResponse:
    info = _command(request, command)
    loaded = _loaded(request, info)
    if isinstance(loaded, HttpResponse):
        return loaded
    access = info.access
    if request.method == "POST":
        dry_first = "dry_run_first" in request.POST
        form = CommandForm(request.POST, command=loaded, name=info.name, force_dry_run=dry_first)
        if form.is_valid():
            access = info.access_with(form.options)
            _check_arguments(request, info, access)
        meta = RunMetaForm(request.POST, info=info, destructive=access.destructive)
        if form.is_valid() and meta.is_valid():
            try:
                run = job_start(
                    actor=request.user,
                    info=info,
                    tokens=form.tokens,
                    reason=meta.cleaned_data["reason"],
                    form_data=form.submitted_data(),
                    dry_run_flag=form.dry_run_flag,
                )
            except JobConflict as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("jobs:run", pk=run.pk)
    else:
        initial: dict[str, Any] = {}
        source = whole_number(request.GET.get("from"))
        if source is not None:
            previous = JobRun.objects.visible_to(request.user).filter(pk=source, command=info.name).first()
            if previous is not None:
                initial = dict(previous.form_data)
        form = CommandForm(initial=initial, command=loaded, name=info.name)
        meta = RunMetaForm(info=info, destructive=access.destructive)
    if form.is_bound:
        preview = cli_preview(info.name, form.tokens) if form.tokens else None
    else:
        probe = CommandForm(form.initial_data(), command=loaded, name=info.name)
        preview = cli_preview(info.name, probe.tokens) if probe.is_valid() else None
    return render(
        request,
        "jobs/command.html",
        {
            "info": info,
            "access": access,
            "form": form,
            "meta": meta,
            "preview": preview or f"python manage.py {info.name} …",
            # Not read from the form in the template: there ``form.dry_run`` is the field of a --dry-run option.
            "dry_run_option": form.dry_run.option if form.dry_run else "",
        },
    )


@staff_required
@explains_refusals
@require_POST
def command_preview(request: ConsoleRequest, command: str) -> HttpResponse:
    """The CLI preview for the form as it is now; it validates, never runs anything."""
    # Not audited: htmx asks for it as the user types; the page itself was.
    info = _command(request, command, audit=False)
    form = CommandForm(request.POST, command=info.load(), name=info.name)
    preview = cli_preview(info.name, form.tokens) if form.is_valid() else None
    return piece(
        request,
        "jobs/command.html#preview",
        {"preview": preview or f"python manage.py {info.name} …", "preview_error": not form.is_valid()},
    )


ORDERINGS = {"newest": ("Newest", Ordering("id", "id", descending=True))}


@staff_required
@require_GET
def run_history(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=JobRun.objects.visible_to(request.user).select_related("requested_by"),
        filterset_class=JobRunFilter,
        table_class=JobRunTable,
        orderings=ORDERINGS,
        default_sort="newest",
    )
    # The bulk form acts on the filter, not on the page the user is on: the cursors are left out.
    bulk_filter = request.GET.copy()
    for cursor in ("after", "before"):
        bulk_filter.pop(cursor, None)
    context = {
        "ft": ft,
        "target_url": reverse("jobs:runs"),
        "may_bulk": request.user.has_perm(RUN),
        "bulk_filter": bulk_filter.urlencode(),
    }
    return page(request, "jobs/runs.html", context, fragment="table-region")


# At most this many runs picked by checkbox in one request; "all matching" has no such limit.
MAX_SELECTED = 1000


@staff_required
@explains_refusals
@require_POST
def run_bulk(request: ConsoleRequest) -> HttpResponse:
    """Stop or re-run the selected runs, or all that match the filter: count, confirm, then a background operation."""
    action, _, scope = request.POST.get("do", "").partition("-")
    if action not in BULK_STATUSES or scope not in ("selected", "matching"):
        return HttpResponseBadRequest("Unknown bulk action: use stop or rerun, of the selected or the matching runs.")
    if not request.user.has_perm(RUN):
        _refuse(request, "(bulk)", lacking([RUN]), action=f"{action} in bulk")
    query = request.POST.get("filter", "")[:2000]
    ids = None
    if scope == "selected":
        ids = sorted({n for v in request.POST.getlist("run") if (n := whole_number(v)) is not None})[:MAX_SELECTED]
    back = f"{reverse('jobs:runs')}?{query}" if query else reverse("jobs:runs")
    runs = bulk_targets(request.user, action=action, query=query, ids=ids)
    up_to = whole_number(request.POST.get("up_to"))
    if up_to is not None:
        runs = runs.filter(pk__lte=up_to)
    count = runs.count()
    verb = BULK_VERBS[action].lower()
    if not count:
        state = "awaiting approval, queued or running" if action == "stop" else "finished"
        if ids == []:
            why = "no runs were selected"
        elif ids:
            why = f"none of the selected runs is {state}"
        else:
            why = f"no run matching these filters is {state}"
        messages.info(request, f"Zero runs to {verb}: {why}.")
        return redirect(back)
    if request.POST.get("confirm") != "yes" or up_to is None:
        newest = runs.order_by("-pk").values_list("pk", flat=True).first()
        context = {"action": action, "verb": verb, "scope": scope, "count": count, "query": query, "ids": ids}
        return render(request, "jobs/bulk_confirm.html", {**context, "up_to": newest, "back": back})
    operation = job_bulk(actor=request.user, action=action, query=query, ids=ids, count=count, up_to=up_to, url=back)
    return redirect("core:operation", pk=operation.pk)


def _readable_run(request: ConsoleRequest, pk: int, *, audit: bool = True) -> JobRun:
    """The run if this user may read it: they may run its class of command, or read every run."""
    run = get_object_or_404(
        JobRun.objects.select_related("requested_by", "stop_requested_by", "rerun_of", "schedule", "decided_by"),
        pk=pk,
    )
    if not run.may_be_read_by(request.user):
        why = f"{lacking(run.access.missing(request.user))} (or {VIEW_ALL})"
        _refuse(request, run.command, why, action="read", run=run, audit=audit)
    return run


def _real_access(run: JobRun) -> Access:
    """The class the real run of a dry run will have: without the flag, a command may judge its arguments
    higher. When that cannot be judged here (secrets sealed with an old key, arguments no longer taken),
    the dry run's own class stands in: the real attempt says why it cannot run."""
    try:
        return catalog.access_for_argv(catalog.lookup(run.command), [t.value for t in for_real_tokens(run)])
    except (Unsealable, CommandError, UnknownCommand):
        return run.access


def _actions(
    request: ConsoleRequest,
    run: JobRun,
    rerun: RunMetaForm | None = None,
    decision: DecisionForm | None = None,
    real: RunMetaForm | None = None,
) -> dict[str, Any]:
    """Whether to offer stop, re-run, approve and reject, and the re-run's form (reason; the typed confirmation
    if destructive)."""
    may_act = _may_act(request, run)
    if rerun is None and may_act and run.is_final:
        rerun = RunMetaForm(info=catalog.lookup(run.command), destructive=run.access.destructive)
    if real is None and may_act and run.may_run_for_real:
        real = RunMetaForm(info=catalog.lookup(run.command), destructive=_real_access(run).destructive, prefix="real")
    may_decide = run.awaits_approval and _decision_denial(request, run) is None
    return {
        "may_act": may_act,
        "rerun": rerun,
        "real": real,
        "may_decide": may_decide,
        "decision": decision or DecisionForm(),
    }


def _run_page(
    request: ConsoleRequest,
    run: JobRun,
    *,
    rerun: RunMetaForm | None = None,
    decision: DecisionForm | None = None,
    real: RunMetaForm | None = None,
) -> HttpResponse:
    chunks, earlier = tail(run)
    return render(
        request,
        "jobs/run.html",
        {
            "run": run,
            "output": render_chunks(chunks),
            "after": chunks[-1].seq if chunks else 0,
            "earlier": earlier,
            "done": run.is_final,
            "poll_every": poll_every(has_output=bool(chunks), awaiting=run.awaits_approval),
            **_actions(request, run, rerun, decision, real),
        },
    )


@staff_required
@explains_refusals
@require_GET
def run_detail(request: ConsoleRequest, pk: int) -> HttpResponse:
    return _run_page(request, _readable_run(request, pk))


def poll_every(*, has_output: bool, awaiting: bool = False) -> str:
    """Poll briskly until the first output arrives, so a new run shows its first line without a second's wait;
    then once a second, which is as fast as a person reads a scrolling log. A run awaiting approval may wait
    for hours: a few seconds' lag after the approval costs nothing."""
    if awaiting:
        return "5s"
    return "1s" if has_output else "250ms"


@staff_required
@explains_refusals
@require_GET
def run_output(request: ConsoleRequest, pk: int) -> HttpResponse:
    """New output after ``after`` (polled), or the output before ``before`` ("load earlier")."""
    # Not audited: a page whose reader lost the right polls on, once a second; the page itself was.
    run = _readable_run(request, pk, audit=False)
    before = whole_number(request.GET.get("before"))
    if before is not None:
        chunks, earlier = tail(run, before=before)
        return piece(
            request, "jobs/run.html#earlier", {"run": run, "output": render_chunks(chunks), "earlier": earlier}
        )
    after = whole_number(request.GET.get("after")) or 0
    # Status first: a final status means every chunk was already written.
    final = run.is_final
    # A flood of output between two polls is not sent whole: the page gets its tail and a note of the gap.
    chunks, skipped = tail(run, after=after)
    cursor = chunks[-1].seq if chunks else after
    done = final
    context = {
        "run": run,
        "poll_output": render_chunks(chunks),
        "skipped": skipped is not None,
        "after": cursor,
        "done": done,
        # The pieces that go out of band: the line count, the summary when it changed, the final status.
        "oob": True,
        # The summary (status, stop button) is sent again only when the status moved since the last poll.
        "refresh_summary": done or run.status != request.GET.get("seen", ""),
        "poll_every": poll_every(has_output=cursor > 0, awaiting=run.awaits_approval),
        **_actions(request, run),
    }
    return piece(request, "jobs/run.html#poll", context, stop_polling=done)


def _may_act(request: ConsoleRequest, run: JobRun) -> bool:
    """Whether to offer stop and re-run: the command still runs from the console and the user may run its class."""
    try:
        info = catalog.lookup(run.command)
    except UnknownCommand:
        return False
    return catalog.denial(request.user, info, run.access) is None


@staff_required
@explains_refusals
@require_POST
def run_stop(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun, pk=pk)
    # Stopping needs the right to run what runs, even for a command that is on the deny list by now.
    missing = run.access.missing(request.user)
    if missing:
        _refuse(request, run.command, lacking(missing), action="stopped", run=run)
    job_stop(actor=request.user, run=run)
    return redirect("jobs:run", pk=run.pk)


@staff_required
@explains_refusals
@require_POST
def run_rerun(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun.objects.select_related("requested_by", "stop_requested_by", "rerun_of"), pk=pk)
    return _repeat(request, run, for_real=False)


@staff_required
@explains_refusals
@require_POST
def run_for_real(request: ConsoleRequest, pk: int) -> HttpResponse:
    """Run a finished dry run's command line again without its dry-run flag."""
    run = get_object_or_404(JobRun.objects.select_related("requested_by", "stop_requested_by", "rerun_of"), pk=pk)
    if not run.may_run_for_real:
        _command(request, run.command)  # who may not run the command hears that first
        messages.error(request, f"Run #{run.pk} is not a dry run that succeeded: there is nothing to run for real.")
        return redirect("jobs:run", pk=run.pk)
    return _repeat(request, run, for_real=True)


def _repeat(request: ConsoleRequest, run: JobRun, *, for_real: bool) -> HttpResponse:
    """Queue ``run``'s command line again (without its dry-run flag when ``for_real``), judged again on its
    arguments and confirmed like a new run."""
    info = _command(request, run.command)
    try:
        tokens = for_real_tokens(run) if for_real else rerun_tokens(run)
        access = catalog.access_for_argv(info, [t.value for t in tokens])
    except (Unsealable, CommandError) as exc:
        messages.error(request, f"This run cannot be repeated as it was ({exc}): edit its arguments.")
        return redirect(f"{reverse('jobs:command', args=[run.command])}?from={run.pk}")
    _check_arguments(request, info, access)
    meta = RunMetaForm(request.POST, info=info, destructive=access.destructive, prefix="real" if for_real else "job")
    if not meta.is_valid():
        return _run_page(request, run, real=meta) if for_real else _run_page(request, run, rerun=meta)
    start = job_run_for_real if for_real else job_rerun
    try:
        new = start(actor=request.user, run=run, info=info, reason=meta.cleaned_data["reason"])
    except JobConflict as exc:
        messages.error(request, str(exc))
        return redirect("jobs:run", pk=run.pk)
    return redirect("jobs:run", pk=new.pk)


COMPARE_CHOICES = 20


@staff_required
@explains_refusals
@require_GET
def run_compare(request: ConsoleRequest, pk: int) -> HttpResponse:
    """Two runs of one command, their arguments side by side with the differences marked; without ``with``,
    the other runs of the command to pick from."""
    run = _readable_run(request, pk)
    choices = (
        JobRun.objects.visible_to(request.user)
        .filter(command=run.command)
        .exclude(pk=run.pk)
        .select_related("requested_by")[:COMPARE_CHOICES]
    )
    context: dict[str, Any] = {"run": run, "choices": choices}
    given = request.GET.get("with")
    if given is None:
        return render(request, "jobs/compare.html", context)
    other_pk = whole_number(given)
    if other_pk is None:
        context["problem"] = "“with” must be the number of a run, such as 12."
        return render(request, "jobs/compare.html", context, status=400)
    other = _readable_run(request, other_pk)
    if other.command != run.command:
        context["problem"] = (
            f"Run #{other.pk} is a run of {other.command}, not of {run.command}: only runs of one command compare."
        )
        return render(request, "jobs/compare.html", context, status=400)
    # The earlier run on the left, as a diff reads: what changed from it to the later one.
    left, right = sorted((run, other), key=lambda r: r.pk)
    context.update(left=left, right=right, rows=compare_arguments(left.argv, right.argv))
    return render(request, "jobs/compare.html", context)


def _decision_denial(request: ConsoleRequest, run: JobRun) -> str | None:
    """Why this user may not approve or reject ``run`` at all: the approve permission, and the right to run the
    run's class themselves, since approving it lets it run."""
    missing = [perm for perm in (APPROVE, *run.access.permissions) if not request.user.has_perm(perm)]
    if missing:
        return lacking(missing)
    if run.requested_by_id == request.user.pk:
        return "you requested it, and another staff user must approve or reject it"
    return None


def _decide(request: ConsoleRequest, pk: int, *, approve: bool) -> HttpResponse:
    run = get_object_or_404(JobRun.objects.select_related("requested_by"), pk=pk)
    action = "approved" if approve else "rejected"
    why = _decision_denial(request, run)
    if why is not None:
        _refuse(request, run.command, why, action=f"{action} by you", run=run)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        return _run_page(request, run, decision=form)
    decide = job_approve if approve else job_reject
    try:
        decide(actor=request.user, run=run, reason=form.cleaned_data["reason"])
    except DecisionRefused as exc:
        messages.error(request, str(exc))
        return redirect("jobs:run", pk=run.pk)
    messages.success(request, f"Run #{run.pk} {action}.")
    return redirect("jobs:run", pk=run.pk)


@staff_required
@explains_refusals
@require_POST
def run_approve(request: ConsoleRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=True)


@staff_required
@explains_refusals
@require_POST
def run_reject(request: ConsoleRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=False)


@staff_required
@explains_refusals
@require_GET
def run_download(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = _readable_run(request, pk)

    def lines() -> Iterator[str]:
        chunks = run.chunks.order_by("seq").values_list("seq", "text", "stream").iterator(chunk_size=50)
        cut = run.cut_after_seq if run.cut_lines else None
        for seq, text, stream in chunks:
            if cut is not None and seq > cut:
                yield f"[… {run.cut_lines:,} lines cut here by the output retention …]\n"
                cut = None
            yield text + "\n" if stream == "out" else "".join(f"[stderr] {line}\n" for line in text.split("\n"))
        if run.partial_line:
            yield run.partial_line + "\n"

    response: HttpResponse = StreamingHttpResponse(  # type: ignore[assignment]  # staff_required types views as HttpResponse
        lines(), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="job-{run.pk}-{run.command}.txt"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


# --- schedules -------------------------------------------------------------------------------------------


def _may_schedule(request: ConsoleRequest, command: str, *, schedule: Schedule | None = None) -> None:
    if not request.user.has_perm(SCHEDULE):
        subject = f"Schedule {schedule.name}" if schedule else f"A schedule of {command}"
        job_deny(actor=request.user, command=command, why=lacking([SCHEDULE]))
        raise Refused(f"{subject} cannot be created, changed, paused or resumed: {lacking([SCHEDULE])}.")


def _readable_schedule(request: ConsoleRequest, pk: int) -> Schedule:
    """The schedule if this user may read its runs (the same rule as for runs)."""
    schedule = get_object_or_404(Schedule.objects.select_related("created_by"), pk=pk)
    if not schedule.may_be_read_by(request.user):
        why = f"{lacking(schedule.access.missing(request.user))} (or {VIEW_ALL})"
        _refuse(request, schedule.command, why, action="read")
    return schedule


SCHEDULE_ORDERINGS = {"name": ("Name", Ordering("name", "id", descending=False))}


@staff_required
@require_GET
def schedule_list(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=Schedule.objects.visible_to(request.user),
        filterset_class=ScheduleFilter,
        table_class=ScheduleTable,
        orderings=SCHEDULE_ORDERINGS,
        default_sort="name",
    )
    may_schedule = request.user.has_perm(SCHEDULE)
    context = {
        "ft": ft,
        "target_url": reverse("jobs:schedules"),
        "commands": catalog.commands_for(request.user) if may_schedule else [],
    }
    return page(request, "jobs/schedules.html", context, fragment=TABLE_REGION)


@staff_required
@explains_refusals
@require_GET
def schedule_pick(request: ConsoleRequest) -> HttpResponse:
    """The list page's "new schedule" form names a command; its form is on the command's own URL."""
    command = request.GET.get("command", "")[:100]
    if not command:
        return redirect("jobs:schedules")
    info = _command(request, command)
    return redirect("jobs:schedule_new", command=info.name)


def _schedule_editor(
    request: ConsoleRequest, info: CommandInfo, loaded: BaseCommand, schedule: Schedule | None
) -> HttpResponse:
    """The command's generated form with the schedule's own fields: create (``schedule`` None) or edit."""
    if request.method == "POST":
        form = CommandForm(request.POST, command=loaded, name=info.name)
        timing = ScheduleForm(request.POST, instance=schedule)
        if form.is_valid():
            _check_arguments(request, info, info.access_with(form.options))
        if form.is_valid() and timing.is_valid():
            saved = schedule_save(
                actor=request.user,
                name=timing.cleaned_data["name"],
                info=info,
                tokens=form.tokens,
                when=timing.when,
                reason=timing.cleaned_data["reason"],
                form_data=form.submitted_data(),
                schedule=schedule,
            )
            messages.success(request, f"Schedule {saved.name} saved.")
            return redirect("jobs:schedule", pk=saved.pk)
    else:
        form = CommandForm(initial=dict(schedule.form_data) if schedule else {}, command=loaded, name=info.name)
        timing = ScheduleForm(instance=schedule)
    return render(
        request,
        "jobs/schedule_form.html",
        {"info": info, "access": info.access, "form": form, "timing": timing, "schedule": schedule},
    )


@staff_required
@explains_refusals
@require_http_methods(["GET", "POST"])
def schedule_new(request: ConsoleRequest, command: str) -> HttpResponse:
    _may_schedule(request, command)
    info = _command(request, command)
    loaded = _loaded(request, info)
    if isinstance(loaded, HttpResponse):
        return loaded
    return _schedule_editor(request, info, loaded, None)


@staff_required
@explains_refusals
@require_http_methods(["GET", "POST"])
def schedule_edit(request: ConsoleRequest, pk: int) -> HttpResponse:
    schedule = _readable_schedule(request, pk)
    _may_schedule(request, schedule.command, schedule=schedule)
    if schedule.read_only:
        raise Refused(f"Schedule {schedule.name} is defined in the site's settings (CONSOLE_JOBS): change it there.")
    info = _command(request, schedule.command)
    loaded = _loaded(request, info)
    if isinstance(loaded, HttpResponse):
        return loaded
    return _schedule_editor(request, info, loaded, schedule)


@staff_required
@explains_refusals
@require_GET
def schedule_detail(request: ConsoleRequest, pk: int) -> HttpResponse:
    schedule = _readable_schedule(request, pk)
    try:
        may_run = catalog.denial(request.user, catalog.lookup(schedule.command), schedule.access) is None
    except UnknownCommand:
        may_run = False
    context = {
        "schedule": schedule,
        "runs": schedule.runs.select_related("requested_by").order_by("-id")[:20],
        "may_schedule": request.user.has_perm(SCHEDULE),
        "may_run": may_run,
    }
    return page(request, "jobs/schedule.html", context, fragment="schedule-summary")


@staff_required
@explains_refusals
@require_POST
def schedule_pause(request: ConsoleRequest, pk: int) -> HttpResponse:
    schedule = _readable_schedule(request, pk)
    _may_schedule(request, schedule.command, schedule=schedule)
    pause_schedule(actor=request.user, schedule=schedule)
    messages.success(request, f"Schedule {schedule.name} paused: it creates no runs until resumed.")
    return redirect("jobs:schedule", pk=schedule.pk)


@staff_required
@explains_refusals
@require_POST
def schedule_resume(request: ConsoleRequest, pk: int) -> HttpResponse:
    schedule = _readable_schedule(request, pk)
    _may_schedule(request, schedule.command, schedule=schedule)
    resume_schedule(actor=request.user, schedule=schedule)
    messages.success(request, f"Schedule {schedule.name} resumed.")
    return redirect("jobs:schedule", pk=schedule.pk)


@staff_required
@explains_refusals
@require_POST
def schedule_run(request: ConsoleRequest, pk: int) -> HttpResponse:
    """Run now: the schedule's command line at once, by this user, who must be allowed to run it."""
    schedule = _readable_schedule(request, pk)
    info = _command(request, schedule.command)
    _check_arguments(request, info, schedule.access)
    try:
        run = schedule_run_now(actor=request.user, schedule=schedule, info=info)
    except JobConflict as exc:
        messages.error(request, str(exc))
    except Unsealable as exc:
        messages.error(request, f"This schedule's secret arguments cannot be read ({exc}): edit it.")
    else:
        messages.success(request, f"Run #{run.pk} of {schedule.name} queued.")
    return redirect("jobs:schedule", pk=schedule.pk)
