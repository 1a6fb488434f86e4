"""The jobs pages: catalog, generated form, run detail with live output, stop, re-run, history, download."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.events.models import Event
from console.jobs.models import JobRun, OutputChunk, Status


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
    denied = Event.objects.get(type="job.denied")
    assert denied.actor == admin_user and denied.data["command"] == "shell" and "deny list" in denied.data["why"]
    assert not JobRun.objects.exists()


def test_staff_without_the_permission_cannot_run_and_the_attempt_is_audited(client: Client, staff: User) -> None:
    client.force_login(staff)
    assert client.get("/jobs/demo_report/").status_code == 403
    assert client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"}).status_code == 403
    assert Event.objects.get(type="job.denied").data["why"] == "lacks the jobs.run_command permission"


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
    assert "Give only one of: --email, --upload." in response.content.decode()


def test_a_valid_form_queues_a_run_and_redirects_to_it(client: Client, operator: User) -> None:
    client.force_login(operator)
    response = client.post(
        "/jobs/demo_report/",
        {"name": "Q1 <b>", "subcommand": "build", "tag": "a\nb", "api_token": "hunter2", "job-reason": "audit"},
    )
    run = JobRun.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    assert run.status == Status.QUEUED and run.requested_by == operator and run.reason == "audit"
    assert run.argv == ["--tag=a", "--tag=b", "--api-token=hunter2", "Q1 <b>", "build"]
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
    assert fragment.startswith('<code id="cli-preview"')
    assert "python manage.py demo_report --format=json --api-token=•••••• Q1 build" in fragment
    invalid = client.post("/jobs/demo_report/preview", {"subcommand": "build"}).content.decode()
    assert 'class="error"' in invalid


def test_only_the_chosen_subcommands_arguments_are_shown(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/demo_report/").content.decode()
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


# --- run detail and live output ------------------------------------------------------------------------------


def test_the_detail_page_polls_while_the_run_is_live(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "hello <script>alert(1)</script>"), ("err", "warning: careful")])
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert "hello &lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page
    assert '<span class="stderr" data-stream="stderr">warning: careful\n</span>' in page
    poll = re.search(r'<span id="output-poll"[^>]*>', page)
    assert poll is not None
    assert f'hx-get="/jobs/runs/{run.pk}/output?after=2&amp;seen=running"' in poll.group(0)
    assert "hx-trigger=\"every 1s [document.visibilityState === 'visible']\"" in poll.group(0)
    assert '<span class="badge running" data-testid="run-status">running</span>' in page
    assert "Stop</button>" in page


def test_a_poll_returns_only_new_output_then_stops_with_286(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, chunks=[("out", "one"), ("out", "two")])
    fragment = client.get(f"/jobs/runs/{run.pk}/output?after=1&seen=running", headers={"HX-Request": "true"})
    assert fragment.status_code == 200
    text = fragment.content.decode()
    assert text.startswith('two\n<span id="output-poll"') and "one" not in text
    assert "after=2&amp;seen=running" in text and "run-summary" not in text
    assert text.endswith('<span id="run-lines" hx-swap-oob="true">0 lines</span>')
    assert "hx-swap-oob" not in client.get(f"/jobs/runs/{run.pk}/output?after=2&seen=running").content.decode()
    # A page that last saw the run queued gets the summary again, now saying running, but no announcement.
    moved = client.get(f"/jobs/runs/{run.pk}/output?after=2&seen=queued").content.decode()
    assert 'hx-swap-oob="true"' in moved and '<span class="badge running"' in moved
    assert "#status" not in moved

    JobRun.objects.filter(pk=run.pk).update(status=Status.SUCCEEDED, exit_code=0)
    OutputChunk.objects.create(run=run, seq=3, text="three", lines=1)
    final = client.get(f"/jobs/runs/{run.pk}/output?after=2", headers={"HX-Request": "true"})
    assert final.status_code == 286
    text = final.content.decode()
    assert text.startswith("three\n") and "hx-trigger" not in text
    assert text.count('hx-swap-oob="innerHTML:#status"') == 1
    assert f"Run #{run.pk} demo_report: succeeded." in text
    assert 'id="run-summary" class="card" aria-label="Run summary" hx-swap-oob="true"' in text
    # Nothing but output may land in the <pre> once htmx lifts the out-of-band pieces out.
    assert "</span><span hx-swap-oob" in text and text.endswith("</section>")


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
    fragment = client.get(f"/jobs/runs/{run.pk}/output?after=3&seen=running").content.decode()
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
        argv=["--api-token", "hunter2", "Q1", "build"], secret_indexes=[1], argv_display="--api-token •••••• Q1 build"
    )
    client.force_login(operator)
    response = client.post(f"/jobs/runs/{run.pk}/rerun")
    new = JobRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/jobs/runs/{new.pk}/"
    assert new.argv == ["--api-token", "hunter2", "Q1", "build"] and new.rerun_of == run
    assert new.argv_display == "--api-token •••••• Q1 build"
    assert Event.objects.get(type="job.queued").data["rerun_of"] == run.pk


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
    client.force_login(staff)
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
    page = client.get("/").content.decode()
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
    assert "hx-trigger=\"every 250ms [document.visibilityState === 'visible']\"" in page
    quiet = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=running").content.decode()
    assert 'hx-trigger="every 250ms' in quiet
    OutputChunk.objects.create(run=run, seq=1, text="first", lines=1)
    flowing = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=running").content.decode()
    assert flowing.startswith("first\n") and 'hx-trigger="every 1s' in flowing


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


def test_a_rerun_whose_reason_holds_a_nul_is_refused_with_a_message(client: Client, operator: User) -> None:
    client.force_login(operator)
    run = make_run(operator, status=Status.SUCCEEDED)
    response = client.post(f"/jobs/runs/{run.pk}/rerun", {"reason": "because\x00"}, follow=True)
    assert response.status_code == 200
    assert "Nothing was re-run: Null characters are not allowed." in response.content.decode()
    assert JobRun.objects.count() == 1
    client.post(f"/jobs/runs/{run.pk}/rerun", {"reason": "x" * 600})
    assert JobRun.objects.exclude(pk=run.pk).get().reason == "x" * 500
