"""The jobs pages: catalog, generated form, run detail with live output, stop, re-run, history, download."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.events.models import Event
from console.eventsourcing.models import RebuildRun
from console.jobs.access import CHANGE, DESTROY, EXPOSE, RUN
from console.jobs.catalog import access_for_argv, lookup
from console.jobs.models import JobRun, OutputChunk, Status
from console.jobs.vault import seal
from tests.conftest import squeezed, tidy_tags


def make_run(
    user: User,
    *,
    status: str = Status.RUNNING,
    chunks: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    **extra: Any,
) -> JobRun:
    run = JobRun.objects.create(
        command="demo_report", argv=["Q1", "build"], argv_display="Q1 build", requested_by=user, status=status, **extra
    )
    for seq, (stream, text) in enumerate(chunks, start=1):
        OutputChunk.objects.create(run=run, seq=seq, stream=stream, text=text, lines=text.count("\n") + 1)
    JobRun.objects.filter(pk=run.pk).update(last_seq=len(chunks))
    return run


# --- catalog ---------------------------------------------------------------------------------------------


def test_the_catalog_lists_runnable_commands_grouped_by_app(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/").content.decode()
    assert '<a href="/jobs/demo_report/"><code>demo_report</code></a>' in page
    assert "<h2" in page and ">Demo</h2>" in page and ">Django</h2>" in page
    for denied in ("shell", "dbshell", "flush", "run_huey", "console_admin", "console_tick", "createsuperuser"):
        assert f"/jobs/{denied}/" not in page


def test_the_catalog_shows_nothing_to_staff_without_the_permission(client: Client, staff: User) -> None:
    client.force_login(staff)
    page = client.get("/jobs/").content.decode()
    assert "0 commands you may run" in page and "/jobs/demo_report/" not in page


def test_the_catalog_search_answers_htmx_with_the_list_only(client: Client, operator: User) -> None:
    client.force_login(operator)
    fragment = client.get("/jobs/?q=demo_rep", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="command-list">')
    assert "demo_report" in fragment and "demo_import" not in fragment and "<html" not in fragment


def test_settings_include_and_exclude_narrow_the_catalog(client: Client, operator: User, settings: Any) -> None:
    client.force_login(operator)
    settings.CONSOLE_JOBS = {"INCLUDE": ["demo"], "EXCLUDE": ["demo_fail"]}
    page = client.get("/jobs/").content.decode()
    assert "/jobs/demo_report/" in page and "/jobs/demo_fail/" not in page and "/jobs/check/" not in page


# --- the form ----------------------------------------------------------------------------------------------


def test_an_unknown_command_is_404(client: Client, operator: User) -> None:
    client.force_login(operator)
    assert client.get("/jobs/no_such_command/").status_code == 404
    assert client.post("/jobs/no_such_command/").status_code == 404


def test_a_denied_command_is_403_and_audited_even_for_a_superuser(client: Client, admin_user: User) -> None:
    client.force_login(admin_user)
    assert client.get("/jobs/shell/").status_code == 403
    response = client.post("/jobs/shell/", {"command": "import os"})
    assert response.status_code == 403
    denials = Event.objects.filter(type="job.denied")
    assert denials.count() == 2  # the form page and the attempt to run it
    for denied in denials:
        assert denied.actor == admin_user and denied.data["command"] == "shell" and "deny list" in denied.data["why"]
    assert not JobRun.objects.exists()


def test_staff_without_the_permission_cannot_run_and_the_attempt_is_audited(client: Client, staff: User) -> None:
    client.force_login(staff)
    assert client.get("/jobs/demo_report/").status_code == 403
    assert client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"}).status_code == 403
    whys = list(Event.objects.filter(type="job.denied").values_list("data__why", flat=True))
    assert whys == ["lacks the jobs.run_command permission"] * 2


def test_a_per_command_permission_overrides_the_default(client: Client, operator: User, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"PERMISSIONS": {"demo_report": "auth.delete_user"}}
    client.force_login(operator)
    assert client.get("/jobs/demo_report/").status_code == 403
    assert client.get("/jobs/demo_import/").status_code == 200


def test_the_form_shows_the_parsers_message_for_bad_arguments(client: Client, operator: User) -> None:
    client.force_login(operator)
    response = client.post(
        "/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "columns": "only-one", "limit": "many"}
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'id="id_limit-error">Enter a whole number.' in page
    assert not JobRun.objects.exists()
    response = client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "columns": "only-one"})
    assert 'id="id_columns-error">Give exactly 2 values, not 1.' in response.content.decode()
    response = client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "since": "2024-02-30"})
    assert "Enter a valid date." in response.content.decode()
    response = client.post(
        "/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "email": "a@b.c", "upload": "on"}
    )
    page = response.content.decode()
    assert page.count("Give only one of: --email, --upload.") == 1
    # Next to the group, before its fields: the error is the group's, not one member's.
    group = page.split("<legend>Delivery: choose at most one of these</legend>", 1)[1].split("</fieldset>", 1)[0]
    assert group.index('id="id_email-error">Give only one of: --email, --upload.') < group.index('name="email"')


def test_a_valid_form_queues_a_run_and_redirects_to_it(client: Client, operator: User) -> None:
    client.force_login(operator)
    response = client.post(
        "/jobs/demo_report/",
        {"name": "Q1 <b>", "subcommand": "build", "tag": "a\nb", "api_token": "hunter2", "job-reason": "audit"},
    )
    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    assert run.status == Status.QUEUED and run.requested_by == operator and run.reason == "audit"
    assert run.real_argv() == ["--tag=a", "--tag=b", "--api-token=hunter2", "Q1 <b>", "build"]
    assert run.argv == ["--tag=a", "--tag=b", "--api-token=••••••", "Q1 <b>", "build"]
    assert run.argv_display == "--tag=a --tag=b --api-token=•••••• 'Q1 <b>' build"
    assert "hunter2" not in run.argv_display and "hunter2" not in str(run.form_data)
    queued = Event.objects.get(type="job.queued")
    assert queued.actor == operator and queued.data["reason"] == "audit" and "hunter2" not in str(queued.data)
    detail = client.get(response["Location"]).content.decode()
    assert "Q1 &lt;b&gt;" in detail and "hunter2" not in detail


def test_a_destructive_command_asks_to_type_its_name(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/migrate/").content.decode()
    assert "Type the command name to confirm" in page
    response = client.post("/jobs/migrate/", {"job-confirm": "yes"})
    assert response.status_code == 200 and "Type “migrate” exactly" in response.content.decode()
    assert client.post("/jobs/migrate/", {"job-confirm": "migrate"}).status_code == 302
    assert JobRun.objects.get().argv == ["--no-input"]


def test_the_cli_preview_follows_the_form_and_masks_secrets(client: Client, operator: User) -> None:
    client.force_login(operator)
    fragment = client.post(
        "/jobs/demo_report/preview",
        {"name": "Q1", "subcommand": "build", "api_token": "hunter2", "format": "json"},
        headers={"HX-Request": "true"},
    ).content.decode()
    assert fragment.lstrip().startswith('<code id="cli-preview"')
    assert "python manage.py demo_report --format=json --api-token=•••••• Q1 build" in fragment
    invalid = client.post("/jobs/demo_report/preview", {"subcommand": "build"}).content.decode()
    assert 'class="error"' in invalid


def test_only_the_chosen_subcommands_arguments_are_shown(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = squeezed(client.get("/jobs/demo_report/").content.decode())
    assert '<fieldset data-subcommand="schedule">' in page
    assert (
        '.job-form:has(#id_subcommand option[value="build"]:checked) '
        'fieldset[data-subcommand]:not([data-subcommand="build"]) { display:none; }'
    ) in page


def test_the_untouched_form_previews_its_default_command_line(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/demo_import/").content.decode()
    assert '<code id="cli-preview" data-testid="cli-preview">python manage.py demo_import</code>' in page
    incomplete = client.get("/jobs/demo_report/").content.decode()
    assert "python manage.py demo_report …</code>" in incomplete


def test_an_edited_rerun_starts_from_the_previous_form(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.SUCCEEDED, form_data={"name": "Q3 report", "format": "html"})
    page = client.get(f"/jobs/demo_report/?from={run.pk}").content.decode()
    assert 'value="Q3 report"' in page and '<option value="html" selected>' in page


def test_an_edited_rerun_starts_only_from_a_run_the_user_may_read(client: Client, staff_with: Any) -> None:
    rebuild = {"subcommand": "rebuild", "rebuild__name": "accounts.activity"}
    run = classed_run(staff_with(RUN, MANAGE_PROJECTION), "projections", ["rebuild", "accounts.activity"])
    JobRun.objects.filter(pk=run.pk).update(form_data=rebuild)
    client.force_login(staff_with(RUN))
    page = client.get(f"/jobs/projections/?from={run.pk}").content.decode()
    assert 'value="accounts.activity"' not in page
    client.force_login(staff_with(RUN, MANAGE_PROJECTION))
    assert 'value="accounts.activity"' in client.get(f"/jobs/projections/?from={run.pk}").content.decode()


# --- run detail and live output ------------------------------------------------------------------------------


def test_the_detail_page_polls_while_the_run_is_live(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "hello <script>alert(1)</script>"), ("err", "warning: careful")])
    page = tidy_tags(client.get(f"/jobs/runs/{run.pk}/").content.decode())
    assert "hello &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert '<span class="stderr" data-stream="stderr">warning: careful\n</span>' in page
    poll = re.search(r'<span id="output-poll"[^>]*>', page)
    assert poll is not None
    assert f'hx-get="/jobs/runs/{run.pk}/output?after=2&amp;seen=running"' in poll.group(0)
    assert 'hx-trigger="every 1s"' in poll.group(0)
    assert '<span class="badge running" data-testid="run-status">running</span>' in page
    assert "Stop</button>" in page


def test_a_poll_returns_only_new_output_then_stops_with_286(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "one"), ("out", "two")])
    fragment = client.get(f"/jobs/runs/{run.pk}/output?after=1&seen=running", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    text = tidy_tags(fragment.content.decode())
    assert text.startswith('two\n<span id="run-lines" hx-swap-oob="true">0 lines</span><span id="output-poll"')
    assert "one" not in text and "after=2&amp;seen=running" in text and "run-summary" not in text
    assert "hx-swap-oob" not in client.get(f"/jobs/runs/{run.pk}/output?after=2&seen=running").content.decode()
    # A page that last saw the run queued gets the summary again, now saying running, but no announcement.
    moved = client.get(f"/jobs/runs/{run.pk}/output?after=2&seen=queued").content.decode()
    assert 'hx-swap-oob="true"' in moved and '<span class="badge running"' in moved
    assert "#status" not in moved

    JobRun.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, exit_code=0)
    OutputChunk.objects.create(run=run, seq=3, text="three", lines=1)
    final = client.get(f"/jobs/runs/{run.pk}/output?after=2", headers={"HX-Request": "true"})
    assert final.status_code == 286
    text = tidy_tags(final.content.decode())
    assert text.startswith("three\n") and "hx-trigger" not in text
    assert text.count('hx-swap-oob="innerHTML:#status"') == 1
    assert f"Run #{run.pk} demo_report: succeeded." in text
    assert 'id="run-summary" class="card" aria-label="Run summary" hx-swap-oob="true"' in text
    # Nothing but output may land in the <pre> once htmx lifts the out-of-band pieces out.
    in_band = re.sub(r"<(span|section)[^>]*hx-swap-oob[^>]*>.*?</\1>", "", text, flags=re.DOTALL)
    assert in_band == 'three\n<span id="output-poll" class="partial-line"></span>'


def test_a_finished_runs_page_does_not_poll(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.FAILED, chunks=[("out", "done")], exit_code=1)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every' not in page.split('id="output"')[1]
    assert "Re-run with the same arguments" in page and "Stop</button>" not in page


def test_a_huge_output_shows_its_tail_and_loads_earlier_on_demand(client: Client, operator: User) -> None:
    client.force_login(operator)
    chunks = [("out", "\n".join(f"line {n}" for n in range(i * 100, i * 100 + 100))) for i in range(50)]
    run = make_run(operator, status=Status.SUCCEEDED, chunks=chunks)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert "line 4999" in page and "line 4000" in page and "line 3999\n" not in page
    assert f'hx-get="/jobs/runs/{run.pk}/output?before=41"' in page
    earlier = client.get(f"/jobs/runs/{run.pk}/output?before=41", headers={"HX-Request": "true"}).content.decode()
    assert "line 3999" in earlier and "line 3000" in earlier and "line 4000" not in earlier
    assert "?before=31" in earlier


def test_a_flood_between_two_polls_sends_only_its_tail(client: Client, operator: User) -> None:
    client.force_login(operator)
    chunks = [("out", "\n".join(f"line {n}" for n in range(i * 100, i * 100 + 100))) for i in range(50)]
    run = make_run(operator, chunks=chunks)
    fragment = tidy_tags(client.get(f"/jobs/runs/{run.pk}/output?after=3&seen=running").content.decode())
    assert fragment.startswith('<span class="skipped">[… more lines than the page shows live')
    assert "line 4999" in fragment and "line 4000" in fragment and "line 3999\n" not in fragment
    assert "after=50&amp;seen=running" in fragment
    small = client.get(f"/jobs/runs/{run.pk}/output?after=48&seen=running").content.decode()
    assert small.startswith("line 4800\n") and "skipped" not in small


def test_bad_cursors_never_fail(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "one")])
    assert client.get(f"/jobs/runs/{run.pk}/output?after=abc").status_code == 200
    assert client.get(f"/jobs/runs/{run.pk}/output?before=-1").status_code == 200
    assert client.get("/jobs/runs/999999/").status_code == 404


def test_the_full_output_downloads_as_text(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.SUCCEEDED, chunks=[("out", "a\nb"), ("err", "oops")])
    response = client.get(f"/jobs/runs/{run.pk}/output.txt")
    assert response["Content-Disposition"] == f'attachment; filename="job-{run.pk}-demo_report.txt"'
    assert b"".join(response.streaming_content) == b"a\nb\n[stderr] oops\n"  # type: ignore[attr-defined]


# --- stop and re-run ---------------------------------------------------------------------------------------


def test_stopping_needs_the_commands_permission(client: Client, staff: User, operator: User) -> None:
    run = make_run(operator)
    client.force_login(staff)
    assert client.post(f"/jobs/runs/{run.pk}/stop").status_code == 403
    client.force_login(operator)
    assert client.post(f"/jobs/runs/{run.pk}/stop").status_code == 302
    run.refresh_from_db()
    assert run.status == Status.CANCELLING and run.stop_requested_by == operator
    assert Event.objects.get(type="job.stop_requested").actor == operator


def test_stopping_a_queued_run_cancels_it_at_once(client: Client, operator: User) -> None:
    run = make_run(operator, status=Status.QUEUED)
    client.force_login(operator)
    client.post(f"/jobs/runs/{run.pk}/stop")
    run.refresh_from_db()
    assert run.status == Status.CANCELLED and run.finished_at is not None


def test_rerun_queues_the_same_arguments_secrets_included(client: Client, operator: User) -> None:
    run = make_run(operator, status=Status.FAILED)
    JobRun.objects.filter(pk=run.pk).update(
        argv=["--api-token", "••••••", "Q1", "build"],
        secret_indexes=[1],
        sealed_secrets=seal({1: "hunter2"}),
        argv_display="--api-token •••••• Q1 build",
    )
    client.force_login(operator)
    response = client.post(f"/jobs/runs/{run.pk}/rerun")
    new = JobRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/jobs/runs/{new.pk}/"
    assert new.real_argv() == ["--api-token", "hunter2", "Q1", "build"] and new.rerun_of == run
    assert new.argv == ["--api-token", "••••••", "Q1", "build"] and "hunter2" not in new.sealed_secrets
    assert new.argv_display == "--api-token •••••• Q1 build"
    assert Event.objects.get(type="job.queued").data["rerun_of"] == run.pk


def test_a_rerun_whose_secrets_cannot_be_opened_goes_to_the_form(client: Client, operator: User) -> None:
    run = make_run(operator, status=Status.FAILED, secret_indexes=[0], sealed_secrets="sealed-with-a-key-long-gone")
    client.force_login(operator)
    response = client.post(f"/jobs/runs/{run.pk}/rerun", follow=True)
    assert response.redirect_chain == [(f"/jobs/demo_report/?from={run.pk}", 302)]
    assert "This run cannot be repeated as it was" in response.content.decode()
    assert JobRun.objects.count() == 1


def test_rerun_of_a_command_now_denied_is_refused(client: Client, operator: User, settings: Any) -> None:
    run = make_run(operator, status=Status.FAILED)
    settings.CONSOLE_JOBS = {"DENY": ["demo_report"]}
    client.force_login(operator)
    assert client.post(f"/jobs/runs/{run.pk}/rerun").status_code == 403
    assert Event.objects.filter(type="job.denied").exists()


# --- history -----------------------------------------------------------------------------------------------


def test_history_filters_by_command_status_user_and_arguments(client: Client, operator: User, staff: User) -> None:
    make_run(operator, status=Status.FAILED)
    other = make_run(staff, status=Status.SUCCEEDED)
    JobRun.objects.filter(pk=other.pk).update(command="demo_import", argv_display="--source billing")
    client.force_login(operator)
    page = client.get("/jobs/runs/?status=succeeded").content.decode()
    assert "demo_import" in page and '<span class="badge failed">' not in page
    assert "demo_import" in client.get("/jobs/runs/?q=BILLING").content.decode()
    assert "demo_import" not in client.get(f"/jobs/runs/?actor={operator.pk}").content.decode()
    fragment = client.get("/jobs/runs/?command=demo_report", headers={"HX-Request": "true"}).content.decode()
    assert fragment.lstrip().startswith('<div id="table-region"')
    assert "demo_report" in fragment and "demo_import" not in fragment
    assert "Enter a valid date." in client.get("/jobs/runs/?since=yesterday").content.decode()


# --- inline mode --------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_inline_mode_runs_the_job_inside_the_request(client: Client, operator: User, settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
    client.force_login(operator)
    response = client.post("/jobs/demo_report/", {"name": "Inline", "subcommand": "build"}, follow=True)
    page = response.content.decode()
    assert '<span class="badge succeeded" data-testid="run-status">succeeded</span>' in page
    assert "name: Inline" in page and "Report ready." in page


def test_the_dashboard_shows_live_and_failed_runs(client: Client, staff: User) -> None:
    make_run(staff, status=Status.RUNNING)
    make_run(staff, status=Status.FAILED, finished_at=timezone.now())
    client.force_login(staff)
    page = squeezed(client.get("/").content.decode())
    assert '<h2 id="jobs-panel-heading">Jobs</h2>' in page
    assert "<dt>Running now</dt><dd>1</dd>" in page
    assert '<a href="/jobs/runs/?status=failed">1</a>' in page


def test_numbers_too_large_for_the_database_are_not_errors(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "one")])
    huge = "9" * 30
    assert client.get(f"/jobs/runs/{huge}/").status_code == 404
    assert client.get(f"/jobs/runs/{run.pk}/output?after={huge}").status_code == 200
    assert "one" in client.get(f"/jobs/runs/{run.pk}/output?before={huge}").content.decode()
    assert client.get(f"/jobs/demo_report/?from={huge}").status_code == 200
    assert client.get(f"/jobs/runs/?actor={huge}").status_code == 200
    assert client.post(f"/jobs/runs/{huge}/stop").status_code == 404


def test_a_command_whose_module_is_broken_says_so(client: Client, operator: User, monkeypatch: Any) -> None:
    def broken(self: Any) -> Any:
        raise ImportError("No module named 'missing_dependency'")

    monkeypatch.setattr("console.jobs.catalog.CommandInfo.load", broken)
    client.force_login(operator)
    response = client.get("/jobs/check/")
    assert response.status_code == 503
    assert "missing_dependency" in response.content.decode()


def test_a_run_without_output_yet_polls_briskly_then_once_a_second(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert 'hx-trigger="every 250ms"' in page
    quiet = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=running").content.decode()
    assert 'hx-trigger="every 250ms' in quiet
    OutputChunk.objects.create(run=run, seq=1, text="first", lines=1)
    flowing = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=running").content.decode()
    assert flowing.startswith("first\n") and 'hx-trigger="every 1s' in flowing


# --- least privilege: a permission per class of command -------------------------------------------------------

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
MANAGE_PROJECTION = "eventsourcing.manage_projection"


def classed_run(user: User, command: str, argv: list[str], *, status: str = Status.SUCCEEDED, **extra: Any) -> JobRun:
    """A run filed under the class its arguments put it in, as ``job_start`` would file it."""
    access = access_for_argv(lookup(command), argv)
    return JobRun.objects.create(
        command=command,
        argv=argv,
        argv_display=" ".join(argv),
        requested_by=user,
        status=status,
        job_class=access.job_class,
        permission=access.permission,
        **extra,
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("command", "data", "argv", "perms", "form_status"),
    [
        pytest.param("dumpdata", {"args": "contenttypes"}, ["contenttypes"], [EXPOSE], 403, id="exposes-data"),
        pytest.param(
            "demo_import",
            {"batches": "1", "seconds": "0"},
            ["--batches=1", "--seconds=0"],
            [CHANGE],
            403,
            id="changes-data",
        ),
        pytest.param(
            "migrate", {"job-confirm": "migrate"}, ["--no-input"], [EXPOSE, CHANGE, DESTROY], 403, id="destructive"
        ),
        # "projections status" is read-only, so the form opens; "rebuild" needs the projections page's permission.
        pytest.param(
            "projections",
            {"subcommand": "rebuild", "rebuild__name": "accounts.activity"},
            ["rebuild", "accounts.activity"],
            [MANAGE_PROJECTION],
            200,
            id="console",
        ),
    ],
)
def test_each_class_above_read_only_needs_its_own_permission_to_open_run_and_rerun(
    client: Client,
    staff_with: Any,
    settings: Any,
    command: str,
    data: dict[str, str],
    argv: list[str],
    perms: list[str],
    form_status: int,
) -> None:
    settings.TASKS = IMMEDIATE
    base = staff_with(RUN)
    earlier = classed_run(base, command, argv)
    client.force_login(base)
    form = client.get(f"/jobs/{command}/")
    assert form.status_code == form_status
    posted = client.post(f"/jobs/{command}/", data)
    rerun = client.post(f"/jobs/runs/{earlier.pk}/rerun", {"job-confirm": command})
    assert posted.status_code == rerun.status_code == 403
    missing = perms[-1]
    assert missing in posted.content.decode() and missing in rerun.content.decode()
    denials = Event.objects.filter(type="job.denied", actor=base)
    assert denials.count() == (3 if form_status == 403 else 2)
    assert all(missing in why for why in denials.values_list("data__why", flat=True))
    assert JobRun.objects.count() == 1

    client.force_login(staff_with(RUN, *perms))
    assert client.get(f"/jobs/{command}/").status_code == 200
    ran = client.post(f"/jobs/{command}/", data)
    assert ran.status_code == 302, ran.content.decode()
    again = client.post(f"/jobs/runs/{earlier.pk}/rerun", {"job-confirm": command})
    assert again.status_code == 302
    runs = JobRun.objects.exclude(pk=earlier.pk)
    assert runs.count() == 2
    for run in runs:  # both ran, through the worker's child process, inline
        assert run.status == Status.SUCCEEDED, (run.note, list(run.chunks.values_list("text", flat=True)))
        assert run.access == earlier.access


def test_arguments_that_raise_the_class_are_judged_not_only_the_name(client: Client, staff_with: Any) -> None:
    client.force_login(staff_with(RUN, EXPOSE))
    assert client.get("/jobs/dumpdata/").status_code == 200
    response = client.post("/jobs/dumpdata/", {"args": "sessions", "output": "/tmp/console-test-dump.json"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "dumpdata cannot be run with these arguments (destructive)" in page and DESTROY in page
    assert Event.objects.get(type="job.denied").data["why"] == f"lacks the {CHANGE} and {DESTROY} permissions"
    assert not JobRun.objects.exists()


def test_the_catalog_says_each_commands_class(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/").content.decode()
    row = page.split('<a href="/jobs/dumpdata/">', 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge">exposes data</span>' in row
    row = page.split('<a href="/jobs/migrate/">', 1)[1].split("</tr>", 1)[0]
    assert '<span class="badge failed">destructive</span>' in row
    form = client.get("/jobs/dumpdata/").content.decode()
    assert f"needs <code>{RUN}</code>, <code>{EXPOSE}</code>." in form


# --- output is as private as the command ------------------------------------------------------------------


def test_a_privileged_runs_output_is_refused_to_staff_without_that_right(client: Client, staff_with: Any) -> None:
    run = classed_run(staff_with(RUN, EXPOSE), "dumpdata", ["sessions"], last_seq=1)
    OutputChunk.objects.create(run=run, seq=1, text='[{"model": "sessions.session", "pk": "abc"}]', lines=1)
    urls = [f"/jobs/runs/{run.pk}/", f"/jobs/runs/{run.pk}/output?after=0", f"/jobs/runs/{run.pk}/output.txt"]
    for perms in [(), (RUN,), (RUN, CHANGE, DESTROY)]:
        client.force_login(staff_with(*perms))
        for url in urls:
            response = client.get(url)
            assert response.status_code == 403, (perms, url)
            assert b"sessions.session" not in response.content
        assert f"/jobs/runs/{run.pk}/" not in client.get("/jobs/runs/").content.decode()
    why = f"Run #{run.pk} of dumpdata cannot be read: lacks the {EXPOSE} permission (or jobs.view_all_runs)."
    assert why in response.content.decode()
    # The page and the download are audited; the polling fragment is not (it would be, once a second).
    assert Event.objects.filter(type="job.denied", data__run_id=run.pk).count() == 6

    for perms in [(RUN, EXPOSE), ("jobs.view_all_runs",)]:
        client.force_login(staff_with(*perms))
        assert "sessions.session" in client.get(urls[0]).content.decode()
        assert client.get(urls[1]).status_code == 286
        assert b"sessions.session" in b"".join(client.get(urls[2]).streaming_content)  # type: ignore[attr-defined]
        assert f"/jobs/runs/{run.pk}/" in client.get("/jobs/runs/").content.decode()


def test_stopping_a_run_needs_the_right_to_run_its_class(client: Client, staff_with: Any) -> None:
    run = classed_run(staff_with(RUN, CHANGE), "demo_import", [], status=Status.RUNNING)
    client.force_login(staff_with(RUN))
    response = client.post(f"/jobs/runs/{run.pk}/stop")
    assert response.status_code == 403 and CHANGE in response.content.decode()
    assert Event.objects.get(type="job.denied").data == {
        "command": "demo_import",
        "why": f"lacks the {CHANGE} permission",
        "run_id": run.pk,
    }
    run.refresh_from_db()
    assert run.status == Status.RUNNING


# --- destructive re-runs ------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_rerunning_a_destructive_command_needs_the_typed_confirmation(
    client: Client, operator: User, settings: Any
) -> None:
    settings.TASKS = IMMEDIATE
    run = classed_run(operator, "migrate", ["--no-input"])
    client.force_login(operator)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert 'name="job-confirm"' in page.split(f'action="/jobs/runs/{run.pk}/rerun"', 1)[1].split("</form>", 1)[0]
    for typed, error in [("", "This field is required."), ("Migrate", "Type “migrate” exactly")]:
        refused = client.post(f"/jobs/runs/{run.pk}/rerun", {"job-confirm": typed})
        assert refused.status_code == 200
        assert f'id="id_job-confirm-error">{error}' in refused.content.decode()
    assert JobRun.objects.count() == 1
    confirmed = client.post(f"/jobs/runs/{run.pk}/rerun", {"job-confirm": "migrate", "job-reason": "again"})
    new = JobRun.objects.exclude(pk=run.pk).get()
    assert confirmed["Location"] == f"/jobs/runs/{new.pk}/"
    assert new.status == Status.SUCCEEDED and new.reason == "again" and new.rerun_of == run


def test_a_read_only_rerun_needs_no_confirmation(client: Client, operator: User) -> None:
    run = classed_run(operator, "demo_report", ["Q1", "build"])
    client.force_login(operator)
    assert 'name="job-confirm"' not in client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert client.post(f"/jobs/runs/{run.pk}/rerun").status_code == 302


# --- the console's own commands ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_live_projection_rebuild_from_the_jobs_form_needs_the_projection_permission(
    client: Client, staff_with: Any, settings: Any
) -> None:
    settings.TASKS = IMMEDIATE
    data = {"subcommand": "rebuild", "rebuild__name": "accounts.activity", "rebuild__into": "live"}
    client.force_login(staff_with(RUN, EXPOSE, CHANGE, DESTROY))
    assert client.get("/jobs/projections/").status_code == 200  # "projections status" is read-only
    data["rebuild__position"] = str(Event.objects.latest("position").position)
    refused = client.post("/jobs/projections/", data)
    assert refused.status_code == 403 and MANAGE_PROJECTION in refused.content.decode()
    assert Event.objects.get(type="job.denied").data["command"] == "projections"
    assert not JobRun.objects.exists() and not RebuildRun.objects.exists()

    manager = staff_with(RUN, MANAGE_PROJECTION)
    client.force_login(manager)
    assert client.post("/jobs/projections/", data).status_code == 302
    run = JobRun.objects.get()
    assert run.status == Status.SUCCEEDED, list(run.chunks.values_list("text", flat=True))
    assert run.argv == ["rebuild", f"--position={data['rebuild__position']}", "--into=live", "accounts.activity"]
    # The child's events name the user who asked, and the run.
    requested = Event.objects.get(type="projection.rebuild_requested")
    assert requested.actor == manager and requested.metadata["job_run_id"] == run.pk
    assert requested.data["swap"] is True
    assert RebuildRun.objects.get().requested_by == manager


@pytest.mark.parametrize("digits", ["²", "\u0661", "1²"])
def test_unicode_digits_in_output_cursors_and_the_rerun_source_are_ignored(
    client: Client, operator: User, digits: str
) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.SUCCEEDED, chunks=[("out", "one")], form_data={"name": "Q3 report"})
    earlier = client.get(f"/jobs/runs/{run.pk}/output?before={digits}")
    assert earlier.status_code == 286 and "one" in earlier.content.decode()  # the poll from the start instead
    poll = client.get(f"/jobs/runs/{run.pk}/output?after={digits}")
    assert poll.status_code == 286 and poll.content.decode().startswith("one\n")
    form = client.get(f"/jobs/demo_report/?from={digits}")
    assert form.status_code == 200 and 'value="Q3 report"' not in form.content.decode()


@pytest.mark.parametrize(
    ("zone", "query", "field"),
    [("America/New_York", "until=9999-12-31", "until"), ("Europe/Paris", "since=0001-01-01", "since")],
)
def test_a_day_the_sites_time_zone_cannot_compare_is_a_form_error(
    client: Client, operator: User, settings: Any, zone: str, query: str, field: str
) -> None:
    settings.TIME_ZONE = zone
    make_run(operator)
    client.force_login(operator)
    response = client.get(f"/jobs/runs/?{query}")
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<span class="field-error" id="id_{field}-error">This time is too far in the past or the future' in body


def test_a_rerun_whose_reason_holds_a_nul_is_refused_next_to_the_field(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.SUCCEEDED)
    response = client.post(f"/jobs/runs/{run.pk}/rerun", {"job-reason": "because\x00"})
    assert response.status_code == 200
    assert "Null characters are not allowed." in response.content.decode()
    assert JobRun.objects.count() == 1
