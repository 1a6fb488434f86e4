from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.management import call_command

from console.core.registry import registry
from console.core.tick import run_tick


@pytest.fixture
def duties() -> Iterator[list[str]]:
    calls: list[str] = []
    saved = list(registry.duties)

    def broken() -> str:
        calls.append("broken")
        raise RuntimeError("disk on fire")

    registry.add_duty("test.broken", broken)

    def fine() -> str:
        calls.append("fine")
        return "did 3 things"

    registry.add_duty("test.fine", fine)
    yield calls
    registry.duties[:] = saved


def test_one_failing_duty_does_not_stop_the_others(duties: list[str]) -> None:
    results = run_tick()
    assert duties == ["broken", "fine"]
    assert results["test.fine"] == "did 3 things"
    assert str(results["test.broken"]).startswith("failed: RuntimeError: disk on fire")


def test_console_tick_command_runs_each_duty_once(duties: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    call_command("console_tick")
    assert duties == ["broken", "fine"]
    assert "test.fine: did 3 things" in capsys.readouterr().out


def test_console_tick_rejects_a_bad_interval(duties: list[str]) -> None:
    with pytest.raises(SystemExit):
        call_command("console_tick", "--loop", "--every", "0")
    assert duties == []
