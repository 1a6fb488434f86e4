"""Subscribers move their checkpoint with their writes; failures are isolated, retried, then parked."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone

from console.core.tick import run_tick
from console.events import subscriptions
from console.events.models import Checkpoint, Event, ParkedEvent
from console.events.pipeline import batch, emit
from console.events.subscriptions import Subscriber, catch_up, notify_appended, register
from tests.events.conftest import PING, SEEN, postgres_only


class Recorder(Subscriber):
    """Writes one ``test.seen`` event per ping, in the transaction that moves its checkpoint."""

    name: ClassVar[str] = "test.recorder"
    types: ClassVar[frozenset[str] | None] = frozenset({"test.ping"})
    batch_size: ClassVar[int] = 4
    max_attempts: ClassVar[int] = 3

    def __init__(self, fail: Callable[[int], bool] = lambda n: False) -> None:
        self.fail = fail
        self.calls: list[list[int]] = []

    def handle(self, events: Sequence[Event]) -> None:
        self.calls.append([e.data["n"] for e in events])
        for event in events:
            emit(SEEN, n=event.data["n"])
            if self.fail(event.data["n"]):
                raise RuntimeError(f"cannot handle {event.data['n']}")


@pytest.fixture(autouse=True)
def fast_retries(settings: Any, no_subscribers: None) -> None:
    settings.CONSOLE_EVENTS = {"RETRY_BASE_SECONDS": 0}


def _pings(count: int) -> None:
    with batch():
        for n in range(count):
            emit(PING, n=n)


def _seen() -> list[int]:
    return sorted(Event.objects.filter(type="test.seen").values_list("data__n", flat=True))


def test_it_handles_every_event_once_in_batches_and_moves_the_checkpoint(db: None) -> None:
    recorder = Recorder()
    register(recorder)
    _pings(10)
    assert catch_up("test.recorder") == 10
    assert recorder.calls == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    checkpoint = Checkpoint.objects.get(name="test.recorder")
    assert checkpoint.handled == 10
    assert checkpoint.position == Event.objects.filter(type="test.ping").latest("position").position
    assert catch_up("test.recorder") == 0
    assert _seen() == list(range(10))


def test_max_batches_bounds_one_call(db: None) -> None:
    register(Recorder())
    _pings(10)
    assert catch_up("test.recorder", max_batches=1) == 4
    assert catch_up("test.recorder") == 6


def test_a_subscriber_failing_mid_batch_resumes_with_nothing_lost_or_doubled(db: None) -> None:
    failures_left = {"count": 2}

    def fail(n: int) -> bool:
        if n == 5 and failures_left["count"] > 0:
            failures_left["count"] -= 1
            return True
        return False

    recorder = Recorder(fail)
    register(recorder)
    _pings(10)

    # The batch 4..7 fails; retried one by one, 4 is kept and 5 fails again: the checkpoint stops before 5.
    assert catch_up("test.recorder") == 5
    checkpoint = Checkpoint.objects.get(name="test.recorder")
    assert checkpoint.failures == 1
    assert "cannot handle 5" in checkpoint.last_error
    assert checkpoint.retry_at is not None
    assert _seen() == [0, 1, 2, 3, 4]

    assert catch_up("test.recorder") == 5
    checkpoint = Checkpoint.objects.get(name="test.recorder")
    assert checkpoint.failures == 0 and checkpoint.last_error == "" and checkpoint.retry_at is None
    assert checkpoint.handled == 10
    assert _seen() == list(range(10))
    assert not ParkedEvent.objects.exists()


def test_an_event_failing_max_attempts_times_is_parked_and_the_rest_go_on(db: None) -> None:
    recorder = Recorder(lambda n: n == 5)
    register(recorder)
    _pings(10)
    for _ in range(Recorder.max_attempts):
        catch_up("test.recorder")
    parked = ParkedEvent.objects.get()
    assert parked.event.data["n"] == 5
    assert parked.attempts == Recorder.max_attempts
    assert "cannot handle 5" in parked.error
    assert _seen() == [0, 1, 2, 3, 4, 6, 7, 8, 9]
    checkpoint = Checkpoint.objects.get(name="test.recorder")
    assert checkpoint.position == Event.objects.filter(type="test.ping").latest("position").position
    assert checkpoint.failures == 0


def test_it_waits_for_the_backoff_before_retrying(db: None, settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"RETRY_BASE_SECONDS": 60}
    register(Recorder(lambda n: n == 1))
    _pings(3)
    assert catch_up("test.recorder") == 1
    checkpoint = Checkpoint.objects.get(name="test.recorder")
    assert checkpoint.retry_at is not None
    assert checkpoint.retry_at > timezone.now() + timedelta(seconds=50)
    assert catch_up("test.recorder") == 0


def test_backoff_doubles_up_to_the_cap(settings: Any) -> None:
    settings.CONSOLE_EVENTS = {"RETRY_BASE_SECONDS": 2, "RETRY_MAX_SECONDS": 10}
    assert [subscriptions.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [2, 4, 8, 10]


def test_a_paused_subscription_does_nothing(db: None) -> None:
    recorder = Recorder()
    register(recorder)
    _pings(3)
    subscriptions.pause("test.recorder")
    assert catch_up("test.recorder") == 0
    assert recorder.calls == []
    subscriptions.resume("test.recorder")
    assert catch_up("test.recorder") == 3


def test_the_tick_catches_up_every_subscriber(db: None) -> None:
    register(Recorder())
    _pings(2)
    assert run_tick()["events.subscriptions"] == {"test.recorder": 2}


def test_appending_in_one_transaction_enqueues_one_catch_up(db: None, django_capture_on_commit_callbacks: Any) -> None:
    register(Recorder())
    with django_capture_on_commit_callbacks() as callbacks, transaction.atomic():
        emit(PING, n=1)
        emit(PING, n=2)
        notify_appended()
    assert [c for c in callbacks if c is subscriptions.dispatch] == [subscriptions.dispatch]


def test_unknown_subscriber_names_are_an_error() -> None:
    with pytest.raises(LookupError):
        catch_up("nobody")


# --- the subscribers page ---------------------------------------------------------------------------------------


def test_the_page_lists_subscribers_with_lag_errors_and_parked_events(client: Client, staff: User) -> None:
    register(Recorder(lambda n: n == 1))
    _pings(3)
    for _ in range(Recorder.max_attempts):
        catch_up("test.recorder")
    client.force_login(staff)
    page = client.get("/events/subscriptions/").content.decode()
    assert "<code>test.recorder</code>" in page
    assert "cannot handle 1" in page
    parked = ParkedEvent.objects.get()
    assert f'href="/events/{parked.event_id}/"' in page
    assert "Pause" not in page  # staff without the permission sees no buttons


def test_an_operator_pauses_and_resumes_and_both_are_audited(
    client: Client, operator: User, django_capture_on_commit_callbacks: Any
) -> None:
    register(Recorder())
    _pings(2)
    client.force_login(operator)
    assert client.post("/events/subscriptions/test.recorder/pause/").status_code == 302
    assert Checkpoint.objects.get(name="test.recorder").status == "paused"
    assert catch_up("test.recorder") == 0
    paused = Event.objects.get(type="subscription.paused")
    assert paused.actor == operator and paused.data["name"] == "test.recorder"
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post("/events/subscriptions/test.recorder/resume/").status_code == 302
    assert subscriptions.dispatch in callbacks
    assert Event.objects.get(type="subscription.resumed").actor == operator
    assert catch_up("test.recorder") == 2


def test_pausing_needs_the_permission_and_a_known_subscriber(client: Client, staff: User, operator: User) -> None:
    register(Recorder())
    client.force_login(staff)
    assert client.post("/events/subscriptions/test.recorder/pause/").status_code == 403
    client.force_login(operator)
    assert client.post("/events/subscriptions/nobody/pause/").status_code == 404
    assert client.get("/events/subscriptions/test.recorder/pause/").status_code == 405


class FakeTask:
    def __init__(self, *, supports_defer: bool) -> None:
        self.supports_defer = supports_defer
        self.enqueued: list[Any] = []
        self.run_after: Any = None

    def get_backend(self) -> Any:
        return self

    def using(self, *, run_after: Any) -> FakeTask:
        clone = FakeTask(supports_defer=self.supports_defer)
        clone.enqueued, clone.run_after = self.enqueued, run_after
        return clone

    def enqueue(self) -> None:
        self.enqueued.append(self.run_after)


def test_a_burst_of_appends_enqueues_one_task_now_and_one_at_the_windows_end(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTask(supports_defer=True)
    monkeypatch.setattr("console.events.tasks.catch_up_subscriptions", fake)
    subscriptions.window.reset()
    for _ in range(50):
        subscriptions.dispatch()
    assert len(fake.enqueued) == 2
    assert fake.enqueued[0] is None  # the first append is caught up at once
    assert fake.enqueued[1] is not None  # the rest by one task deferred to the end of the window
    subscriptions.window.reset()  # a later window starts afresh
    subscriptions.dispatch()
    assert len(fake.enqueued) == 3 and fake.enqueued[2] is None


def test_inline_backends_are_never_coalesced(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTask(supports_defer=False)
    monkeypatch.setattr("console.events.tasks.catch_up_subscriptions", fake)
    for _ in range(3):
        subscriptions.dispatch()
    assert fake.enqueued == [None, None, None]


@contextmanager
def _checkpoint_held(name: str) -> Iterator[None]:
    """Another connection holds checkpoint ``name`` locked (on SQLite: the database's write lock) meanwhile."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        try:
            with transaction.atomic():
                Checkpoint.objects.select_for_update().get(name=name)
                holding.set()
                release.wait(30)
        finally:
            connection.close()

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert holding.wait(10)
        yield
    finally:
        release.set()
        other.join(30)


@postgres_only
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_catch_up_leaves_a_subscriber_another_is_running_and_dispatches_one_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its worker thread is not held waiting; the events it left are handled by the catch-up it dispatched."""
    recorder = Recorder()
    register(recorder)
    _pings(3)
    dispatched: list[None] = []
    monkeypatch.setattr(subscriptions, "dispatch", lambda: dispatched.append(None))
    Checkpoint.objects.create(name=recorder.name)
    with _checkpoint_held(recorder.name):  # by another catch-up, in the middle of moving it
        started = time.monotonic()
        assert catch_up(recorder.name, skip_locked=True) == 0
        assert time.monotonic() - started < 5  # left to the other, not waited for
        assert dispatched == [None]
    assert catch_up(recorder.name, skip_locked=True) == 3  # what the dispatched catch-up does
    assert _seen() == [0, 1, 2]


@pytest.mark.django_db(transaction=True)
def test_a_caught_up_subscriber_looks_without_waiting_for_a_lock() -> None:
    """Most wake-ups find nothing to do: they must not queue behind writers (on SQLite, the one write lock)."""
    recorder = Recorder()
    register(recorder)
    _pings(2)
    assert catch_up(recorder.name) == 2
    with _checkpoint_held(recorder.name):  # by a writer in the middle of its transaction
        started = time.monotonic()
        assert catch_up(recorder.name) == 0
        assert time.monotonic() - started < 5


def test_a_batch_read_before_the_lock_is_read_again_when_the_checkpoint_moved_meanwhile(db: None) -> None:
    recorder = Recorder()
    register(recorder)
    _pings(3)
    stale = Checkpoint.objects.create(name=recorder.name)
    assert catch_up(recorder.name) == 3  # another catch-up, between our look and our lock
    assert catch_up(recorder.name, seen=stale) == 0
    assert _seen() == [0, 1, 2]
    assert recorder.calls == [[0, 1, 2]]
