"""Children (job runs, workers) are the site's own manage.py, found from the running process or a setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from console.core.processes import child_env, manage_argv, manage_prefix

MANAGE_PY = Path(__file__).resolve().parents[2] / "manage.py"


def test_a_process_started_by_manage_py_starts_that_manage_py(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(MANAGE_PY), "run_huey"])
    assert manage_prefix() == [sys.executable, "-u", str(MANAGE_PY)]


def test_the_setting_names_the_manage_py(settings: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/srv/venv/bin/gunicorn", "site.wsgi"])
    settings.CONSOLE_CORE = {"MANAGE_PY": "/srv/site/manage.py"}
    assert manage_argv("check", "--deploy") == [sys.executable, "-u", "/srv/site/manage.py", "check", "--deploy"]


def test_a_server_process_starts_django_with_its_own_settings_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/srv/venv/bin/gunicorn", "site.wsgi"])
    argv = manage_argv("diffsettings", "--output", "unified")
    assert argv[:4] == [sys.executable, "-u", "-m", "django"]
    # Started from elsewhere, the child still finds the settings module through the environment alone.
    result = subprocess.run(argv, env=child_env(), cwd="/", capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "+ CONSOLE_EVENTS = {'STRICT': True" in result.stdout
