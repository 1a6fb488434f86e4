"""Subscriptions: named checkpoints over the log, each moved by its subscriber in the same transaction.

A subscriber handles a batch of events inside the transaction that moves its checkpoint, so its writes and
its position commit together or not at all. A batch that raises is rolled back and replayed one event at a
time to find the failing event; the events before it are kept, the failure is recorded with a backoff, and
after ``max_attempts`` the event is parked and the subscriber moves on.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar, cast

import structlog
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.tasks import Task
from django.utils import timezone
from django.utils.module_loading import import_string

from console.core.coalesce import NOW, Window
from console.events.conf import events_settings
from console.events.context import defers
from console.events.models import Checkpoint, Event, ParkedEvent
from console.events.reader import Cursor, cursor_of, read_batch, read_records
from console.events.records import StoredEvent

log = structlog.get_logger(__name__)


class Subscriber(ABC):
    """Subclass, give it a stable ``name``, implement ``handle``, then ``register(instance)``."""

    name: ClassVar[str]
    types: ClassVar[frozenset[str] | None] = None
    # The columns ``handle`` reads, when not all of them (see ``read_batch``'s ``only``).
    columns: ClassVar[tuple[str, ...] | None] = None
    batch_size: ClassVar[int] = 500
    # Handle ``Record`` tuples instead of ``Event`` models: several times cheaper to read, for subscribers
    # that go through much of the log and need only what a record holds.
    reads_records: ClassVar[bool] = False
    max_attempts: ClassVar[int] = 5

    @abstractmethod
    def handle(self, events: Sequence[Event]) -> None: ...

    def read(self, after: Cursor) -> Sequence[StoredEvent]:
        """The next batch after ``after`` in commit order, as ``handle`` takes it: models, or records.

        A subscriber that needs only something the database computes from each event can read just that
        (see ``reader.read_values``), given what it returns has the ``position`` and ``tx`` a cursor is made of.
        """
        if self.reads_records:
            return read_records(after, limit=self.batch_size, types=self.types)
        return read_batch(after, limit=self.batch_size, types=self.types, only=self.columns)


_subscribers: dict[str, Subscriber] = {}


def register(subscriber: Subscriber) -> None:
    existing = _subscribers.get(subscriber.name)
    if existing is not None and type(existing) is not type(subscriber):
        raise ValueError(f"subscriber {subscriber.name!r} is already registered by {type(existing).__name__}")
    _subscribers[subscriber.name] = subscriber


def unregister(name: str) -> None:
    _subscribers.pop(name, None)


def get(name: str) -> Subscriber:
    try:
        return _subscribers[name]
    except KeyError:
        raise LookupError(f"no subscriber named {name!r} is registered") from None


def registered() -> list[Subscriber]:
    return sorted(_subscribers.values(), key=lambda subscriber: subscriber.name)


def backoff(failures: int) -> timedelta:
    conf = events_settings()
    return timedelta(seconds=min(conf.retry_base_seconds * 2 ** max(failures - 1, 0), conf.retry_max_seconds))


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(exc)).strip()[:4000]


def _advance(checkpoint: Checkpoint, cursor: Cursor, handled: int) -> None:
    new = (-1 if cursor[0] is None else cursor[0], cursor[1])
    old = (-1 if checkpoint.tx is None else checkpoint.tx, checkpoint.position)
    if new <= old:
        raise RuntimeError(f"checkpoint {checkpoint.name!r} may only move forward")
    checkpoint.tx, checkpoint.position = cursor
    checkpoint.handled += handled


# What a batch that went through moves on its checkpoint.
_MOVED = ["tx", "position", "handled", "failures", "last_error", "retry_at", "updated_at"]


def _lock(name: str, *, skip_locked: bool) -> Checkpoint | None:
    """Subscriber ``name``'s checkpoint, locked for this transaction (created on first use).

    ``None`` when ``skip_locked`` and another catch-up holds it right now.
    """
    locked = Checkpoint.objects.select_for_update(skip_locked=skip_locked)
    checkpoint = locked.filter(name=name).first()
    if checkpoint is None and not Checkpoint.objects.filter(name=name).exists():
        Checkpoint.objects.get_or_create(name=name)
        checkpoint = locked.filter(name=name).first()
    return checkpoint


def _may_run(checkpoint: Checkpoint) -> bool:
    """Active and not backing off after a failure."""
    if checkpoint.status != Checkpoint.Status.ACTIVE:
        return False
    return checkpoint.retry_at is None or checkpoint.retry_at <= timezone.now()


def _step(
    subscriber: Subscriber, seen: Checkpoint | None = None, *, skip_locked: bool = False
) -> tuple[int, bool, Checkpoint | None]:
    """Handle one batch; returns (events handled, whether more may be waiting, the checkpoint as it moved).

    ``seen`` is the checkpoint as last read without a lock: its batch is read before taking the lock, so a
    subscriber with nothing to do, the common wake-up, costs two reads and no write transaction (on SQLite
    the lock is the database's one write lock, which writers would queue behind). The batch is kept when the
    locked checkpoint is where ``seen`` was (the log behind a cursor never changes), and read again if not.

    With ``skip_locked``, a checkpoint another catch-up is moving is left to it instead of waited for (a
    worker thread stays free to deliver), and one more catch-up is dispatched: that one may have read the
    log before whatever woke this one had committed.
    """
    events: list[Event] | None = None
    if seen is not None:
        if not _may_run(seen):
            return 0, False, None
        events = cast(list[Event], subscriber.read(seen.cursor))
        if not events:
            return 0, False, None
    with transaction.atomic():
        checkpoint = _lock(subscriber.name, skip_locked=skip_locked)
        if checkpoint is None:
            transaction.on_commit(dispatch)
            return 0, False, None
        if not _may_run(checkpoint):
            return 0, False, None
        if seen is None or checkpoint.cursor != seen.cursor:
            events = cast(list[Event], subscriber.read(checkpoint.cursor))
        if not events:
            return 0, False, None
        try:
            with transaction.atomic():
                subscriber.handle(events)
        except Exception as exc:
            log.warning("subscription.batch_failed", subscriber=subscriber.name, error=_error_text(exc))
            handled, more = _step_one_by_one(subscriber, checkpoint, events)
            return handled, more, checkpoint
        _advance(checkpoint, cursor_of(events[-1]), len(events))
        checkpoint.failures = 0
        checkpoint.last_error = ""
        checkpoint.retry_at = None
        checkpoint.save(update_fields=_MOVED)
        return len(events), len(events) == subscriber.batch_size, checkpoint


def _step_one_by_one(subscriber: Subscriber, checkpoint: Checkpoint, events: list[Event]) -> tuple[int, bool]:
    handled = 0
    for event in events:
        try:
            with transaction.atomic():
                subscriber.handle([event])
        except Exception as exc:
            error = _error_text(exc)
            attempts = checkpoint.failures + 1
            checkpoint.last_error = f"event #{event.position}: {error}"
            if attempts < subscriber.max_attempts:
                checkpoint.failures = attempts
                checkpoint.retry_at = timezone.now() + backoff(attempts)
                checkpoint.save()
                log.warning(
                    "subscription.event_failed",
                    subscriber=subscriber.name,
                    position=event.position,
                    attempts=attempts,
                    error=error,
                )
                return handled, False
            ParkedEvent.objects.create(checkpoint=checkpoint, event_id=event.position, error=error, attempts=attempts)
            log.error("subscription.event_parked", subscriber=subscriber.name, position=event.position, error=error)
            _advance(checkpoint, cursor_of(event), 0)
        else:
            _advance(checkpoint, cursor_of(event), 1)
            handled += 1
        checkpoint.failures = 0
        checkpoint.retry_at = None
    checkpoint.save()
    return handled, len(events) == subscriber.batch_size


def catch_up(
    name: str, *, max_batches: int | None = None, skip_locked: bool = False, seen: Checkpoint | None = None
) -> int:
    """Handle what is available to subscriber ``name``, batch by batch; returns how many events it handled.

    ``skip_locked``: leave a subscriber another catch-up is running to it (see ``_step``). ``seen``: its
    checkpoint as just read without a lock (``catch_up_all`` reads them all at once); read here otherwise.
    """
    subscriber = get(name)
    if seen is None:
        seen = Checkpoint.objects.filter(name=name).first()
    total = 0
    batches = 0
    while max_batches is None or batches < max_batches:
        handled, more, seen = _step(subscriber, seen, skip_locked=skip_locked)
        total += handled
        batches += 1
        if not more:
            break
    return total


def catch_up_all() -> dict[str, int]:
    """Catch up every registered subscriber; one that fails unexpectedly never stops the others.

    Where the task backend can defer, a subscriber another catch-up is running is left to it and looked at
    again by a coalesced catch-up; an inline backend waits for it instead (its dispatch would run at once).
    """
    skip_locked = defers(CATCH_UP)
    subscribers = registered()
    seen = Checkpoint.objects.in_bulk([subscriber.name for subscriber in subscribers], field_name="name")
    results: dict[str, int] = {}
    for subscriber in subscribers:
        try:
            results[subscriber.name] = catch_up(
                subscriber.name, skip_locked=skip_locked, seen=seen.get(subscriber.name)
            )
        except Exception:
            log.exception("subscription.catch_up_failed", subscriber=subscriber.name)
            results[subscriber.name] = -1
    return results


def pause(name: str) -> None:
    Checkpoint.objects.update_or_create(name=name, defaults={"status": Checkpoint.Status.PAUSED})


def resume(name: str) -> None:
    Checkpoint.objects.update_or_create(name=name, defaults={"status": Checkpoint.Status.ACTIVE, "retry_at": None})


# Appends can arrive thousands of times a second, and each catch-up task handles everything committed by
# the time it runs: so a process enqueues at most one task now and one at the end of each window (see
# ``console.core.coalesce``). Nothing waits for the tick, and the queue is not flooded.
DISPATCH_WINDOW_SECONDS = 0.25
# The catch-up task, named rather than imported: the tasks module imports this one.
CATCH_UP = "console.events.tasks.catch_up_subscriptions"
window = Window()


def dispatch() -> None:
    """Enqueue a catch-up of every subscriber, coalesced per process (see DISPATCH_WINDOW_SECONDS)."""
    catch_up_subscriptions: Task[[], dict[str, int]] = import_string(CATCH_UP)
    if not defers(catch_up_subscriptions):
        # Inline backends run the task now; there is nothing to coalesce.
        catch_up_subscriptions.enqueue()
        return
    delay = window.claim(DISPATCH_WINDOW_SECONDS)
    if delay == NOW:
        catch_up_subscriptions.enqueue()
    elif delay is not None:
        catch_up_subscriptions.using(run_after=timezone.now() + timedelta(seconds=delay)).enqueue()


def notify_appended(using: str = DEFAULT_DB_ALIAS) -> None:
    """Say that events were appended: subscribers catch up once the surrounding transaction commits.

    The emit pipeline calls this; so must code that inserts events itself (bulk appends). One task is
    enqueued per transaction however many events it appends.
    """
    if not _subscribers:
        return
    conn = connections[using]
    if conn.in_atomic_block and any(entry[1] is dispatch for entry in conn.run_on_commit):
        return
    transaction.on_commit(dispatch, using=using)


def notify_sink(record: object, event_dict: object) -> None:
    """Emit sink: a persisted event wakes the subscribers after commit."""
    if getattr(record, "stored", None) is not None:
        notify_appended()
