from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import call_command


def test_seeding_twice_changes_nothing_the_second_time(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("console_demo", "--events", "0", "--messages", "0")
    users, groups = User.objects.count(), Group.objects.count()
    assert User.objects.filter(username="ops", groups__name="Console operators").exists()
    call_command("console_demo", "--events", "0", "--messages", "0")
    assert (User.objects.count(), Group.objects.count()) == (users, groups)
    assert "people:" in capsys.readouterr().out


def test_it_refuses_negative_volumes(db: None) -> None:
    with pytest.raises(SystemExit):
        call_command("console_demo", "--events", "-1")
