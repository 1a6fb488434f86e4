from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from itertools import groupby
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from console.core.auth import require_perm, staff_required
from console.core.http import ConsoleRequest, vary_on_htmx, wants_fragment
from console.core.inputs import whole_number
from console.core.tables import Ordering, filtered_table
from console.jobs import catalog
from console.jobs.catalog import CommandInfo, UnknownCommand
from console.jobs.filters import JobRunFilter, JobRunTable
from console.jobs.introspect import CommandForm, cli_preview
from console.jobs.models import ACTIVE, LIVE, JobRun, Status
from console.jobs.output import render_chunks, tail
from console.jobs.services import JobConflict, job_deny, job_rerun, job_start, job_stop

# htmx stops polling when a poll is answered with this status.
STOP_POLLING = 286


class RunMetaForm(forms.Form):
    reason = forms.CharField(
        max_length=500, required=False, help_text="Why you are running this: kept with the run and in the audit log."
    )
    confirm = forms.CharField(
        max_length=100,
        required=False,
        label="Type the command name to confirm",
        help_text="This command is destructive.",
    )

    prefix = "job"

    def __init__(self, *args: Any, info: CommandInfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.info = info
        if not info.destructive:
            del self.fields["confirm"]
        else:
            self.fields["confirm"].required = True

    def clean_confirm(self) -> str:
        value = str(self.cleaned_data.get("confirm", "")).strip()
        if value != self.info.name:
            raise forms.ValidationError(f"Type “{self.info.name}” exactly to run this destructive command.")
        return value


class RerunForm(forms.Form):
    # A CharField refuses NUL, which PostgreSQL text cannot hold; a long reason is cut, as before.
    reason = forms.CharField(required=False, strip=False)


def _command(request: ConsoleRequest, name: str, *, audit: bool) -> CommandInfo:
    """The command if this user may run it; 404 when unknown, 403 (audited on writes) when refused."""
    try:
        info = catalog.lookup(name)
    except UnknownCommand:
        raise Http404(f"No management command called {name!r}.") from None
    why = catalog.refusal(info)
    if why is None and not request.user.has_perm(info.permission):
        why = f"lacks the {info.permission} permission"
    if why is not None:
        if audit:
            job_deny(actor=request.user, command=name, why=why)
        raise PermissionDenied(f"{name} cannot be run from the console: {why}.")
    return info


@staff_required
@require_GET
def command_catalog(request: ConsoleRequest) -> HttpResponse:
    query = request.GET.get("q", "")[:100]
    commands = catalog.commands_for(request.user, query=query)
    groups = [(app, list(items)) for app, items in groupby(commands, key=lambda info: info.app_verbose_name)]
    context = {"groups": groups, "q": query, "count": len(commands)}
    if wants_fragment(request):
        return vary_on_htmx(render(request, "jobs/catalog.html#command-list", context))
    return vary_on_htmx(render(request, "jobs/catalog.html", context))


@staff_required
@require_http_methods(["GET", "POST"])
def command_form(request: ConsoleRequest, command: str) -> HttpResponse:
    info = _command(request, command, audit=request.method == "POST")
    try:
        loaded = info.load()
    except Exception as exc:  # the command's own module is broken: say so instead of failing the page
        reason = f"{exc.__class__.__name__}: {exc}"
        return render(request, "jobs/unloadable.html", {"info": info, "reason": reason}, status=503)
    if request.method == "POST":
        form = CommandForm(request.POST, command=loaded, name=info.name)
        meta = RunMetaForm(request.POST, info=info)
        if form.is_valid() and meta.is_valid():
            try:
                run = job_start(
                    actor=request.user,
                    info=info,
                    tokens=form.tokens,
                    reason=meta.cleaned_data["reason"],
                    form_data=form.submitted_data(),
                )
            except JobConflict as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("jobs:run", pk=run.pk)
    else:
        initial: dict[str, Any] = {}
        source = whole_number(request.GET.get("from"))
        if source is not None:
            previous = JobRun.objects.filter(pk=source, command=info.name).first()
            if previous is not None:
                initial = dict(previous.form_data)
        form = CommandForm(initial=initial, command=loaded, name=info.name)
        meta = RunMetaForm(info=info)
    if form.is_bound:
        preview = cli_preview(info.name, form.tokens) if form.tokens else None
    else:
        probe = CommandForm(form.initial_data(), command=loaded, name=info.name)
        preview = cli_preview(info.name, probe.tokens) if probe.is_valid() else None
    return render(
        request,
        "jobs/command.html",
        {"info": info, "form": form, "meta": meta, "preview": preview or f"python manage.py {info.name} …"},
    )


@staff_required
@require_POST
def command_preview(request: ConsoleRequest, command: str) -> HttpResponse:
    """The CLI preview for the form as it is now; it validates, never runs anything."""
    info = _command(request, command, audit=False)
    form = CommandForm(request.POST, command=info.load(), name=info.name)
    preview = cli_preview(info.name, form.tokens) if form.is_valid() else None
    return render(
        request,
        "jobs/command.html#preview",
        {"preview": preview or f"python manage.py {info.name} …", "preview_error": not form.is_valid()},
    )


def dashboard_panel(request: HttpRequest) -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    counts = JobRun.objects.filter(Q(status__in=ACTIVE) | Q(finished_at__gte=since)).aggregate(
        live=Count("pk", filter=Q(status__in=LIVE)),
        queued=Count("pk", filter=Q(status=Status.QUEUED)),
        failed=Count("pk", filter=Q(status__in=[Status.FAILED, Status.LOST], finished_at__gte=since)),
    )
    return counts


ORDERINGS = {"newest": ("Newest", Ordering("id", "id", descending=True))}


@staff_required
@require_GET
def run_history(request: ConsoleRequest) -> HttpResponse:
    ft = filtered_table(
        request,
        queryset=JobRun.objects.select_related("requested_by"),
        filterset_class=JobRunFilter,
        table_class=JobRunTable,
        orderings=ORDERINGS,
        default_sort="newest",
    )
    context = {"ft": ft, "target_url": reverse("jobs:runs")}
    if wants_fragment(request):
        return vary_on_htmx(render(request, "core/_filtered_table.html#table-region", context))
    return vary_on_htmx(render(request, "jobs/runs.html", context))


@staff_required
@require_GET
def run_detail(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun.objects.select_related("requested_by", "stop_requested_by", "rerun_of"), pk=pk)
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
            "may_act": _may_act(request, run),
            "poll_every": poll_every(has_output=bool(chunks)),
        },
    )


def poll_every(*, has_output: bool) -> str:
    """Poll briskly until the first output arrives, so a new run shows its first line without a second's wait;
    then once a second, which is as fast as a person reads a scrolling log."""
    return "1s" if has_output else "250ms"


@staff_required
@require_GET
def run_output(request: ConsoleRequest, pk: int) -> HttpResponse:
    """New output after ``after`` (polled), or the output before ``before`` ("load earlier")."""
    run = get_object_or_404(JobRun.objects.select_related("requested_by", "stop_requested_by"), pk=pk)
    before = whole_number(request.GET.get("before"))
    if before is not None:
        chunks, earlier = tail(run, before=before)
        return render(
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
        "announce": True,
        # The summary (status, stop button) is sent again only when the status moved since the last poll.
        "refresh_summary": done or run.status != request.GET.get("seen", ""),
        "may_act": _may_act(request, run),
        "poll_every": poll_every(has_output=cursor > 0),
    }
    response = render(request, "jobs/run.html#poll", context)
    if done:
        response.status_code = STOP_POLLING
    return response


def _may_act(request: ConsoleRequest, run: JobRun) -> bool:
    try:
        info = catalog.lookup(run.command)
    except UnknownCommand:
        return False
    return catalog.may_run(request.user, info)


@staff_required
@require_POST
def run_stop(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun, pk=pk)
    try:
        info = catalog.lookup(run.command)
    except UnknownCommand:
        info = None
    require_perm(request, info.permission if info else "jobs.run_command")
    job_stop(actor=request.user, run=run)
    return redirect("jobs:run", pk=run.pk)


@staff_required
@require_POST
def run_rerun(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun, pk=pk)
    info = _command(request, run.command, audit=True)
    form = RerunForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Nothing was re-run: {' '.join(map(str, form.errors['reason']))}")
        return redirect("jobs:run", pk=run.pk)
    try:
        new = job_rerun(actor=request.user, run=run, info=info, reason=form.cleaned_data["reason"][:500])
    except JobConflict as exc:
        messages.error(request, str(exc))
        return redirect("jobs:run", pk=run.pk)
    return redirect("jobs:run", pk=new.pk)


@staff_required
@require_GET
def run_download(request: ConsoleRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(JobRun, pk=pk)

    def lines() -> Iterator[str]:
        for text, stream in run.chunks.order_by("seq").values_list("text", "stream").iterator(chunk_size=50):
            yield text + "\n" if stream == "out" else "".join(f"[stderr] {line}\n" for line in text.split("\n"))
        if run.partial_line:
            yield run.partial_line + "\n"

    response: HttpResponse = StreamingHttpResponse(  # type: ignore[assignment]  # staff_required types views as HttpResponse
        lines(), content_type="text/plain; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="job-{run.pk}-{run.command}.txt"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
