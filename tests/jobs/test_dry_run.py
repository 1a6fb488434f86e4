"""Dry run, then run: the dry-run flag found in a command's parser, "Dry run first", "Run for real"."""

from __future__ import annotations

import argparse
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from console.events.models import Event
from console.jobs.introspect import MASK, dry_run_arg, inspect_parser
from console.jobs.models import JobRun, Status
from console.jobs.vault import seal
from tests.conftest import squeezed


def parser_with(*options: tuple[str, dict[str, Any]]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    for option, kwargs in options:
        parser.add_argument(option, **kwargs)
    return parser


@pytest.mark.parametrize("option", ["--dry-run", "--dry_run", "--dryrun", "--check", "--noop", "--no-op"])
def test_a_conventional_dry_run_flag_is_found(option: str) -> None:
    arg = dry_run_arg(inspect_parser(parser_with((option, {"action": "store_true"}))))
    assert arg is not None and arg.option == option


def test_only_a_flag_counts_and_a_declared_option_wins() -> None:
    valued = parser_with(("--check", {"help": "which check to run"}))
    assert dry_run_arg(inspect_parser(valued)) is None
    both = inspect_parser(
        parser_with(("--dry-run", {"action": "store_true"}), ("--simulate", {"action": "store_true"}))
    )
    declared = dry_run_arg(both, "--simulate")
    assert declared is not None and declared.option == "--simulate"
    assert dry_run_arg(both, "--nonexistent") is None


def test_the_form_offers_a_dry_run_first_only_when_the_command_has_one(
    client: Client, operator: User, settings: Any
) -> None:
    client.force_login(operator)
    page = squeezed(client.get("/jobs/demo_report/").content.decode())
    assert 'name="dry_run_first" value="1"' in page and "Dry run first (<code>--dry-run</code>)" in page
    assert 'name="dry_run_first"' not in client.get("/jobs/demo_import/").content.decode()
    settings.CONSOLE_JOBS = {"DRY_RUN": {"demo_import": "--batches"}}  # takes a value: not a dry-run flag
    assert 'name="dry_run_first"' not in client.get("/jobs/demo_import/").content.decode()


def test_dry_run_first_queues_the_run_with_its_flag(client: Client, operator: User) -> None:
    client.force_login(operator)
    client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "dry_run_first": "1"})
    run = JobRun.objects.get()
    assert run.dry_run_flag == "--dry-run" and "--dry-run" in run.argv
    # Ticking the flag by hand is a dry run too; a run without it is not.
    client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build", "dry_run": "on"})
    client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"})
    flags = list(JobRun.objects.order_by("id").values_list("dry_run_flag", flat=True))
    assert flags == ["--dry-run", "--dry-run", ""]


def dry_run(user: User, *, status: str = Status.SUCCEEDED) -> JobRun:
    """A finished dry run of demo_report with a secret argument, as job_start files it."""
    return JobRun.objects.create(
        command="demo_report",
        argv=["--dry-run", f"--api-token={MASK}", "Q1", "build"],
        argv_display=f"--dry-run --api-token={MASK} Q1 build",
        secret_indexes=[1],
        sealed_secrets=seal({1: "--api-token=hunter2"}),
        form_data={"name": "Q1", "subcommand": "build", "dry_run": "on"},
        job_class="read-only",
        requested_by=user,
        status=status,
        dry_run_flag="--dry-run",
        reason="check first",
    )


def test_a_finished_dry_run_runs_for_real_with_the_same_arguments_secrets_sealed(
    client: Client, operator: User
) -> None:
    run = dry_run(operator)
    client.force_login(operator)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert f'action="/jobs/runs/{run.pk}/for-real"' in page and "Run for real with the same arguments" in page
    response = client.post(f"/jobs/runs/{run.pk}/for-real", {"real-reason": "looked fine"})
    real = JobRun.objects.exclude(pk=run.pk).get()
    assert response["Location"] == f"/jobs/runs/{real.pk}/"
    assert real.argv == [f"--api-token={MASK}", "Q1", "build"] and real.dry_run_flag == ""
    assert real.real_argv() == ["--api-token=hunter2", "Q1", "build"]
    assert "hunter2" not in real.sealed_secrets and "hunter2" not in real.argv_display
    assert real.dry_run_of == run and real.reason == "looked fine" and real.status == Status.QUEUED
    assert real.form_data == {"name": "Q1", "subcommand": "build"}
    assert Event.objects.get(type="job.queued").data["dry_run_of"] == run.pk
    # The two runs link to each other.
    real_page = squeezed(client.get(f"/jobs/runs/{real.pk}/").content.decode())
    assert f'data-testid="run-dry-run-of"><a href="/jobs/runs/{run.pk}/">#{run.pk}</a>' in real_page
    dry_page = squeezed(client.get(f"/jobs/runs/{run.pk}/").content.decode())
    assert f'run for real as <a href="/jobs/runs/{real.pk}/">#{real.pk}</a>' in dry_page


@pytest.mark.parametrize("status", [Status.FAILED, Status.RUNNING])
def test_only_a_dry_run_that_succeeded_runs_for_real(client: Client, operator: User, status: str) -> None:
    run = dry_run(operator, status=status)
    client.force_login(operator)
    assert "Run for real" not in client.get(f"/jobs/runs/{run.pk}/").content.decode()
    page = client.post(f"/jobs/runs/{run.pk}/for-real", follow=True).content.decode()
    assert f"Run #{run.pk} is not a dry run that succeeded: there is nothing to run for real." in page
    assert JobRun.objects.count() == 1


def test_running_for_real_needs_the_right_to_run_the_command(client: Client, operator: User, staff: User) -> None:
    run = dry_run(operator)
    client.force_login(staff)
    assert client.post(f"/jobs/runs/{run.pk}/for-real").status_code == 403
    assert JobRun.objects.count() == 1


def test_the_real_run_of_a_command_that_needs_approval_waits_for_it(
    client: Client, operator: User, settings: Any
) -> None:
    settings.CONSOLE_JOBS = {"APPROVALS": ["demo_report"]}
    run = dry_run(operator)
    client.force_login(operator)
    client.post(f"/jobs/runs/{run.pk}/for-real")
    real = JobRun.objects.exclude(pk=run.pk).get()
    assert real.status == Status.AWAITING and real.dry_run_of == run


def test_a_destructive_real_run_asks_for_the_typed_confirmation(client: Client, operator: User, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"CLASSES": {"demo_report": "destructive"}}
    run = dry_run(operator)
    client.force_login(operator)
    refused = client.post(f"/jobs/runs/{run.pk}/for-real", {"real-confirm": "nope"})
    assert refused.status_code == 200
    assert 'id="id_real-confirm-error">Type “demo_report” exactly' in refused.content.decode()
    assert JobRun.objects.count() == 1
    client.post(f"/jobs/runs/{run.pk}/for-real", {"real-confirm": "demo_report"})
    assert JobRun.objects.count() == 2
