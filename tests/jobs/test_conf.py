"""CONSOLE_JOBS is validated at start-up by system checks, and read with defaults."""

from __future__ import annotations

from typing import Any

import pytest

from console.jobs.access import Access, JobClass
from console.jobs.conf import check_jobs_settings, jobs_settings


def errors(settings: Any, value: object) -> list[tuple[str, str]]:
    settings.CONSOLE_JOBS = value
    return [(message.id or "", message.msg) for message in check_jobs_settings(None)]


def test_the_defaults_pass_the_checks(settings: Any) -> None:
    assert errors(settings, {}) == []
    conf = jobs_settings()
    assert conf.access_for("check") is None  # the site says nothing: the built-in table decides
    assert {"shell", "run_huey", "db_worker", "console_admin", "console_tick", "console_job", "flush"} <= conf.denied
    assert not conf.is_exclusive("migrate")


@pytest.mark.parametrize(
    ("value", "expected", "names"),
    [
        ("not a dict", "console.jobs.E001", "CONSOLE_JOBS must be a dict"),
        ({"COLOUR": "blue"}, "console.jobs.E002", "unknown key 'COLOUR'"),
        ({"EXCLUDE": "shell"}, "console.jobs.E003", "CONSOLE_JOBS['EXCLUDE']"),
        ({"FLUSH_SECONDS": 0}, "console.jobs.E003", "CONSOLE_JOBS['FLUSH_SECONDS']"),
        ({"FLUSH_BYTES": 1.5}, "console.jobs.E003", "CONSOLE_JOBS['FLUSH_BYTES']"),
        ({"TIMEOUTS": {"check": "soon"}}, "console.jobs.E003", "CONSOLE_JOBS['TIMEOUTS']"),
        ({"PERMISSIONS": {"check": "nodot"}}, "console.jobs.E004", "PERMISSIONS"),
        ({"CLASSES": {"check": "read_only"}}, "console.jobs.E004", "CLASSES must map command names to one of"),
        ({"CLASSES": {"check": "console"}}, "console.jobs.E004", "CLASSES must map command names to one of"),
        ({"CLASSES": {"check": ["read-only"]}}, "console.jobs.E003", "CONSOLE_JOBS['CLASSES']"),
        (
            {"CLASSES": {"check": "destructive"}, "PERMISSIONS": {"check": "auth.view_user"}},
            "console.jobs.E004",
            "check cannot be in both CLASSES and PERMISSIONS",
        ),
        ({"TIMEOUTS": {"check": -1}}, "console.jobs.E004", "TIMEOUTS"),
        ({"HEARTBEAT_SECONDS": 10, "LOST_AFTER_SECONDS": 15}, "console.jobs.E004", "LOST_AFTER_SECONDS"),
    ],
)
def test_each_mistake_is_an_error_naming_the_key(settings: Any, value: object, expected: str, names: str) -> None:
    found = errors(settings, value)
    assert any(check_id == expected and names in message for check_id, message in found), found


def test_a_value_of_the_wrong_type_falls_back_to_the_default(settings: Any) -> None:
    settings.CONSOLE_JOBS = {"DEFAULT_TIMEOUT": "forever", "FLUSH_BYTES": 1024}
    conf = jobs_settings()
    assert conf.default_timeout == 3600 and conf.flush_bytes == 1024


def test_settings_extend_the_deny_list_never_shrink_it(settings: Any) -> None:
    settings.CONSOLE_JOBS = {"DENY": ["check"], "EXCLUSIVE": ["*"], "TIMEOUTS": {"check": 5}}
    conf = jobs_settings()
    assert "check" in conf.denied and "shell" in conf.denied
    assert conf.is_exclusive("anything") and conf.timeout_for("check") == 5


def test_classes_and_permissions_say_what_a_command_needs_for_any_arguments(settings: Any) -> None:
    settings.CONSOLE_JOBS = {"CLASSES": {"check": "destructive"}, "PERMISSIONS": {"showmigrations": "auth.view_user"}}
    conf = jobs_settings()
    assert conf.access_for("check") == Access(JobClass.DESTRUCTIVE)
    assert conf.access_for("showmigrations") == Access(JobClass.CONSOLE, "auth.view_user")
    assert conf.access_for("migrate") is None
