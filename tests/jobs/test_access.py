"""Every command is classed, least privilege by default: the built-in table, the command's own word, settings."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User

from console.jobs.access import BUILT_IN, CHANGE, DESTROY, EXPOSE, RUN, Access, JobClass
from console.jobs.catalog import access_for_argv, commands_for, denial, lookup
from console.jobs.models import JobRun


@pytest.mark.parametrize(
    ("command", "argv", "expected"),
    [
        ("check", [], JobClass.READ_ONLY),
        ("showmigrations", [], JobClass.READ_ONLY),
        ("dumpdata", ["sessions"], JobClass.EXPOSES_DATA),
        ("dumpdata", ["sessions", "--output=/tmp/x.json"], JobClass.DESTRUCTIVE),
        ("diffsettings", [], JobClass.EXPOSES_DATA),
        ("sendtestemail", ["a@example.com"], JobClass.EXPOSES_DATA),
        ("inspectdb", [], JobClass.EXPOSES_DATA),
        ("print_settings", [], JobClass.EXPOSES_DATA),
        ("clearsessions", [], JobClass.CHANGES_DATA),
        ("collectstatic", ["--no-input"], JobClass.CHANGES_DATA),
        ("collectstatic", ["--no-input", "--clear"], JobClass.DESTRUCTIVE),
        ("loaddata", ["fixture.json"], JobClass.DESTRUCTIVE),
        ("migrate", ["--no-input"], JobClass.DESTRUCTIVE),
        ("remove_stale_contenttypes", ["--no-input"], JobClass.DESTRUCTIVE),
        ("graph_models", ["-a", "--output=/tmp/models.dot"], JobClass.DESTRUCTIVE),
        # The demo's commands say it themselves.
        ("demo_report", ["Q1", "build"], JobClass.READ_ONLY),
        ("demo_import", [], JobClass.CHANGES_DATA),
        ("demo_send_messages", [], JobClass.CHANGES_DATA),
        ("console_demo", [], JobClass.CHANGES_DATA),
        ("upcast_dry_run", ["account.opened"], JobClass.READ_ONLY),
    ],
)
def test_it_classes_each_run_by_its_command_and_arguments(command: str, argv: list[str], expected: JobClass) -> None:
    assert access_for_argv(lookup(command), argv).job_class == expected


def test_the_consoles_own_command_needs_its_pages_permission_for_what_the_page_guards() -> None:
    info = lookup("projections")
    assert info.access == Access(JobClass.READ_ONLY)
    assert access_for_argv(info, ["status"]) == Access(JobClass.READ_ONLY)
    rebuild = access_for_argv(info, ["rebuild", "accounts.activity", "--position=3", "--into=live"])
    assert rebuild == Access(JobClass.CONSOLE, "eventsourcing.manage_projection")
    assert rebuild.permissions == (RUN, "eventsourcing.manage_projection")


def test_each_class_above_read_only_needs_its_own_permission() -> None:
    assert Access(JobClass.READ_ONLY).permissions == (RUN,)
    assert Access(JobClass.EXPOSES_DATA).permissions == (RUN, EXPOSE)
    assert Access(JobClass.CHANGES_DATA).permissions == (RUN, CHANGE)
    # A destructive command can change and show anything.
    assert Access(JobClass.DESTRUCTIVE).permissions == (RUN, EXPOSE, CHANGE, DESTROY)


def test_settings_override_the_table_and_the_commands_own_word(settings: Any) -> None:
    settings.CONSOLE_JOBS = {
        "CLASSES": {"dumpdata": "read-only", "demo_report": "destructive"},
        "PERMISSIONS": {"check": "auth.view_user"},
    }
    # For any arguments: the site said so.
    assert access_for_argv(lookup("dumpdata"), ["--output=/tmp/x.json"]) == Access(JobClass.READ_ONLY)
    assert lookup("demo_report").access == Access(JobClass.DESTRUCTIVE)
    assert lookup("check").access == Access(JobClass.CONSOLE, "auth.view_user")


def test_a_judge_that_fails_on_the_arguments_is_taken_as_destructive(monkeypatch: Any) -> None:
    from console.eventsourcing.management.commands import projections

    def broken(self: Any, options: dict[str, Any]) -> str:
        raise KeyError("action")

    monkeypatch.setattr(projections.Command, "console_job_class_for", broken)
    assert access_for_argv(lookup("projections"), ["status"]) == Access(JobClass.DESTRUCTIVE)


def test_a_command_nobody_classed_is_data_changing(monkeypatch: Any) -> None:
    monkeypatch.delitem(BUILT_IN, "check")
    assert lookup("check").access == Access(JobClass.CHANGES_DATA)


def test_a_declaration_that_names_no_class_is_taken_as_the_conservative_one(monkeypatch: Any) -> None:
    from console.demo.management.commands import demo_report

    monkeypatch.setattr(demo_report.Command, "console_job_class", "read_only", raising=False)
    assert lookup("demo_report").access == Access(JobClass.CHANGES_DATA)


def test_the_catalog_offers_only_the_classes_the_user_may_run(staff_with: Callable[..., User]) -> None:
    def names(*perms: str) -> set[str]:
        return {info.name for info in commands_for(staff_with(*perms))}

    assert names() == set()
    base = names(RUN)
    assert {"check", "demo_report", "projections"} <= base
    assert not {"dumpdata", "diffsettings", "demo_import", "migrate", "loaddata"} & base
    exposing = names(RUN, EXPOSE)
    assert {"dumpdata", "diffsettings"} <= exposing and not {"demo_import", "migrate"} & exposing
    assert {"demo_import", "migrate", "loaddata"} <= names(RUN, EXPOSE, CHANGE, DESTROY)
    assert "migrate" not in names(RUN, DESTROY)


def test_a_refusal_names_every_missing_permission(staff_with: Callable[..., User]) -> None:
    base = staff_with(RUN)
    assert denial(base, lookup("check")) is None
    assert denial(base, lookup("migrate")) == f"lacks the {EXPOSE} and {CHANGE} and {DESTROY} permissions"
    assert denial(base, lookup("dumpdata")) == f"lacks the {EXPOSE} permission"
    assert denial(staff_with(EXPOSE), lookup("check")) == f"lacks the {RUN} permission"


def test_the_run_history_holds_only_runs_of_classes_the_user_may_run(
    staff_with: Callable[..., User], admin_user: User
) -> None:
    for job_class in JobClass:
        permission = "eventsourcing.manage_projection" if job_class == JobClass.CONSOLE else ""
        JobRun.objects.create(command=f"cmd-{job_class}", job_class=job_class, permission=permission)

    def visible(*perms: str) -> set[str]:
        user = admin_user if perms == ("superuser",) else staff_with(*perms)
        return set(JobRun.objects.visible_to(user).values_list("job_class", flat=True))

    assert visible() == set()
    assert visible(EXPOSE, CHANGE, DESTROY) == set()  # without the base permission, nothing
    assert visible(RUN) == {JobClass.READ_ONLY}
    assert visible(RUN, EXPOSE) == {JobClass.READ_ONLY, JobClass.EXPOSES_DATA}
    assert visible(RUN, "eventsourcing.manage_projection") == {JobClass.READ_ONLY, JobClass.CONSOLE}
    assert visible(RUN, CHANGE, DESTROY) == {JobClass.READ_ONLY, JobClass.CHANGES_DATA}
    assert visible(RUN, EXPOSE, CHANGE, DESTROY) == set(JobClass) - {JobClass.CONSOLE}
    assert visible("jobs.view_all_runs") == set(JobClass)
    assert visible("superuser") == set(JobClass)
    # One run's page says what the history's filter says.
    base = staff_with(RUN)
    for run in JobRun.objects.all():
        assert run.may_be_read_by(base) == (run.job_class == JobClass.READ_ONLY)
