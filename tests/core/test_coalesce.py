from __future__ import annotations

import threading

import pytest

from console.core.coalesce import NOW, Window

W = 0.25


def test_the_first_wake_up_runs_now_and_the_rest_of_its_window_once_at_the_end() -> None:
    window = Window()
    assert window.claim(W, now=10.0) == NOW
    assert window.claim(W, now=10.05) == pytest.approx(0.20)
    assert [window.claim(W, now=10.05 + i / 100) for i in range(10)] == [None] * 10


def test_a_quiet_window_is_answered_by_its_one_task_now() -> None:
    window = Window()
    assert window.claim(W, now=10.0) == NOW
    assert window.claim(W, now=10.3) == NOW  # nothing came after the first: no deferred task is due
    assert window.claim(W, now=10.31) == pytest.approx(0.24)


def test_while_busy_each_window_gets_one_task_at_its_end_and_none_waits_longer_than_a_window() -> None:
    window = Window()
    tasks: list[float] = []  # when each enqueued task runs
    for step in range(400):  # a wake-up every 10 ms for 4 s
        now = 10.0 + step / 100
        delay = window.claim(W, now=now)
        if delay is not None:
            tasks.append(now + delay)
        # Whatever committed now is caught by a task that runs at or after now, within a window.
        assert any(now <= at <= now + W + 1e-9 for at in tasks)
    assert len(tasks) == pytest.approx(4 / W + 1, abs=1)  # one per window (two per window before)


def test_after_a_quiet_spell_the_next_wake_up_runs_now_again() -> None:
    window = Window()
    window.claim(W, now=10.0)
    window.claim(W, now=10.1)  # deferred to 10.25
    assert window.claim(W, now=10.3) == pytest.approx(0.2)  # busy: chained to 10.5
    assert window.claim(W, now=11.0) == NOW


def test_threads_of_one_process_share_the_window() -> None:
    window = Window()
    claims: list[float | None] = []
    barrier = threading.Barrier(8)

    def wake() -> None:
        barrier.wait()
        claims.append(window.claim(60.0))

    threads = [threading.Thread(target=wake) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert claims.count(NOW) == 1 and claims.count(None) == 6
