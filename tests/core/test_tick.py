from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from console.core.models import MaintenanceTick, WorkerHeartbeat
from console.core.registry import registry
from console.core.tick import forget_stopped_processes, run_tick


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


def test_one_failing_duty_does_not_stop_the_others(duties: list[str], db: None) -> None:
    results = run_tick()
    assert duties == ["broken", "fine"]
    assert results["test.fine"] == "did 3 things"
    assert str(results["test.broken"]).startswith("failed: RuntimeError: disk on fire")


def test_it_records_when_it_ran_and_what_failed(duties: list[str], db: None) -> None:
    run_tick()
    tick = MaintenanceTick.objects.get()
    assert tick.age_seconds < 5 and tick.failed == ["test.broken"]


def test_it_forgets_processes_that_stopped_a_day_ago(db: None) -> None:
    old = timezone.now() - timedelta(days=2)
    WorkerHeartbeat.objects.create(worker="gone:1", backend="x", seen_at=old)
    WorkerHeartbeat.objects.create(worker="here:2", backend="x", seen_at=timezone.now())
    MaintenanceTick.objects.create(runner="gone:1", ran_at=old)
    assert forget_stopped_processes() == "1 worker and 1 tick records forgotten"
    assert list(WorkerHeartbeat.objects.values_list("worker", flat=True)) == ["here:2"]


def test_console_tick_command_runs_each_duty_once(
    duties: list[str], capsys: pytest.CaptureFixture[str], db: None
) -> None:
    call_command("console_tick")
    assert duties == ["broken", "fine"]
    assert "test.fine: did 3 things" in capsys.readouterr().out


def test_console_tick_rejects_a_bad_interval(duties: list[str]) -> None:
    with pytest.raises(SystemExit):
        call_command("console_tick", "--loop", "--every", "0")
    assert duties == []
