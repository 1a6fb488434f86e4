"""CONSOLE_JOBS is validated at start-up by system checks, and read with defaults."""

from __future__ import annotations

from typing import Any

import pytest

from console.jobs.conf import DEFAULT_PERMISSION, check_jobs_settings, jobs_settings


def ids(settings: Any, value: object) -> list[str]:
    settings.CONSOLE_JOBS = value
    return [message.id or "" for message in check_jobs_settings(None)]


def test_the_defaults_pass_the_checks(settings: Any) -> None:
    assert ids(settings, {}) == []
    conf = jobs_settings()
    assert conf.permission_for("check") == DEFAULT_PERMISSION
    assert {"shell", "run_huey", "console_admin", "console_tick", "flush"} <= conf.deny
    assert "migrate" in conf.destructive and not conf.is_exclusive("migrate")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not a dict", "console.jobs.E001"),
        ({"colour": "blue"}, "console.jobs.E002"),
        ({"exclude": "shell"}, "console.jobs.E003"),
        ({"flush_seconds": 0}, "console.jobs.E004"),
        ({"permissions": {"check": "nodot"}}, "console.jobs.E005"),
        ({"timeouts": {"check": -1}}, "console.jobs.E006"),
        ({"heartbeat_seconds": 10, "lost_after_seconds": 15}, "console.jobs.E007"),
    ],
)
def test_each_mistake_has_its_own_check(settings: Any, value: object, expected: str) -> None:
    assert expected in ids(settings, value)


def test_settings_extend_the_deny_list_never_shrink_it(settings: Any) -> None:
    settings.CONSOLE_JOBS = {"deny": ["check"], "exclusive": ["*"], "timeouts": {"check": 5}}
    conf = jobs_settings()
    assert "check" in conf.deny and "shell" in conf.deny
    assert conf.is_exclusive("anything") and conf.timeout_for("check") == 5
