from __future__ import annotations

from pathlib import Path

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command


def test_it_generates_a_password_once_and_prints_it(
    db: None, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CONSOLE_ADMIN_PASSWORD", raising=False)
    password_file = tmp_path / "admin_password"
    call_command("console_admin", "--password-file", str(password_file))
    first = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    call_command("console_admin", "--password-file", str(password_file))
    second = capsys.readouterr().out.strip().rsplit(" ", 1)[-1]
    assert first == second == password_file.read_text()
    user = authenticate(username="admin", password=first)
    assert isinstance(user, User) and user.is_staff and user.is_superuser
    assert User.objects.filter(username="admin").count() == 1


def test_it_takes_the_password_from_the_environment(db: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONSOLE_ADMIN_PASSWORD", "s3cret-from-env")
    call_command("console_admin", "--password-file", str(tmp_path / "admin_password"))
    assert authenticate(username="admin", password="s3cret-from-env") is not None
    assert not (tmp_path / "admin_password").exists()
