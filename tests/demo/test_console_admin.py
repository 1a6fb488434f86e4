from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command


@pytest.fixture
def var_dir(tmp_path: Path, settings: Any) -> Path:
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_it_generates_a_password_once_and_prints_it(
    db: None, var_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONSOLE_ADMIN_PASSWORD", raising=False)
    call_command("console_admin")
    first = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    call_command("console_admin")
    second = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert first == second == (var_dir / "admin_password").read_text()
    user = authenticate(username="admin", password=first)
    assert isinstance(user, User) and user.is_staff and user.is_superuser
    assert User.objects.filter(username="admin").count() == 1


def test_it_takes_the_password_from_the_environment(db: None, var_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "s3cret-from-env")
    call_command("console_admin")
    assert authenticate(username="admin", password="s3cret-from-env") is not None
    assert not (var_dir / "admin_password").exists()
