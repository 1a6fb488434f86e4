"""Projectors: handlers per domain event that write ordinary Django models, inline or through a subscription.

An inline projector runs in the transaction that appends the events (read-your-writes). An asynchronous one
is a subscriber of the log: its writes and its checkpoint commit together. Either way it writes the rows of
one *generation*: the live one normally, a fresh one during a rebuild, which becomes live when it is done.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any, ClassVar, Literal

from django.db import connection, models, transaction
from django.utils import timezone

from console.events.models import Checkpoint, Event, ParkedEvent
from console.events.reader import Cursor, head
from console.events.records import StoredEvent
from console.events.subscriptions import Subscriber
from console.events.subscriptions import register as register_subscriber
from console.eventsourcing.domain import DomainEvent, UnknownEventType, registered_event_names, to_domain
from console.eventsourcing.models import ProjectionState, ReadModel
from console.eventsourcing.upsert import upsert

Mode = Literal["inline", "async"]


class Projector(ABC):
    """A named projection: which events it reads and how they change its read models.

    ``replaying`` is true while a rebuild replays history: anything that reaches outside the read models
    (mail, webhooks, alerts) goes through ``side_effect`` and is skipped then.
    """

    name: ClassVar[str]
    mode: ClassVar[Mode] = "inline"
    description: ClassVar[str] = ""
    read_models: ClassVar[tuple[type[ReadModel], ...]] = ()
    # Events of these stream types whose type no code registers are errors (parked), not silently skipped.
    stream_types: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, replaying: bool = False) -> None:
        self.replaying = replaying

    @property
    @abstractmethod
    def types(self) -> frozenset[str]: ...

    def wants(self, type_: str, stream_type: str) -> bool:
        """Whether events of ``type_`` in streams of ``stream_type`` are this projection's to handle."""
        return type_ in self.types or stream_type in self.stream_types

    def accepts(self, event: StoredEvent) -> bool:
        return self.wants(event.type, event.stream_type)

    def accepted[S: StoredEvent](self, events: Sequence[S]) -> list[S]:
        """The events of ``events`` this projection handles."""
        cls = type(self)
        if cls.accepts is Projector.accepts and cls.wants is Projector.wants:
            # The usual projector: two set lookups per event, without two method calls (replays ask this of
            # every event they read).
            types, stream_types = self.types, self.stream_types
            return [event for event in events if event.type in types or event.stream_type in stream_types]
        return [event for event in events if self.accepts(event)]

    @abstractmethod
    def project(self, events: Sequence[StoredEvent], *, generation: int) -> None: ...

    def side_effect(self, action: Callable[[], None]) -> None:
        if not self.replaying:
            transaction.on_commit(action)

    def clear(self, generation: int) -> None:
        for model in self.read_models:
            model.generations.filter(generation=generation).delete()


RowHandler = Callable[[Any, Any, Any, StoredEvent], None]


def handles(event_cls: type[DomainEvent]) -> Callable[[RowHandler], RowHandler]:
    """Mark a ``RowProjector`` method as the handler of ``event_cls``: ``(self, row, event, stored)``."""

    def mark(func: RowHandler) -> RowHandler:
        func.handles = event_cls  # type: ignore[attr-defined]  # read by RowProjector.__init_subclass__
        return func

    return mark


class RowProjector(Projector):
    """One row of ``model`` per key (the stream id by default); a batch is one read and one bulk upsert.

    While replaying, the rows a batch wrote are kept for the next batches (up to ``replay_rows_kept``): the
    generation being rebuilt has no other writer, and replays touch the same keys over and over.
    """

    model: ClassVar[type[ReadModel]]
    # The model's field that holds ``key()``; with the default key, a field named after the stream id.
    key_field: ClassVar[str] = "stream_id"
    replay_rows_kept: ClassVar[int] = 100_000
    _row_handlers: ClassVar[dict[type[DomainEvent], RowHandler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._row_handlers)
        for value in vars(cls).values():
            target = getattr(value, "handles", None)
            if target is not None:
                handlers[target] = value
        cls._row_handlers = handlers
        # Asked once per event during replays: computed once per class.
        cls._types = frozenset(handled.event_name for handled in handlers)
        if getattr(cls, "model", None) is not None:
            cls.read_models = (cls.model,)

    _types: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, replaying: bool = False) -> None:
        super().__init__(replaying=replaying)
        self._kept: dict[str, ReadModel] = {}
        self._kept_generation: int | None = None

    @property
    def types(self) -> frozenset[str]:
        return self._types

    def key(self, event: StoredEvent) -> str:
        return event.stream_id

    def _rows(self, keys: set[str], generation: int) -> dict[str, ReadModel]:
        """The stored rows of ``keys`` in ``generation`` (kept ones first, while replaying)."""
        if not self.replaying:
            found: dict[str, ReadModel] = {}
            missing: Collection[str] = keys
        else:
            if self._kept_generation != generation:
                self._kept, self._kept_generation = {}, generation
            found = {key: self._kept[key] for key in keys if key in self._kept}
            missing = [key for key in keys if key not in found]
        if missing:
            lookup = {"generation": generation, f"{self.key_field}__in": missing}
            for row in self.model.generations.filter(**lookup):
                found[getattr(row, self.key_field)] = row
        return found

    def project(self, events: Sequence[StoredEvent], *, generation: int) -> None:
        wanted = self.accepted(events)
        if not wanted:
            return
        model, key_field, handlers = self.model, self.key_field, self._row_handlers
        keys = [self.key(event) for event in wanted]
        stored = self._rows(set(keys), generation)
        changed: dict[str, ReadModel] = {}
        for event, key in zip(wanted, keys, strict=True):
            domain = to_domain(event)
            handler = handlers.get(type(domain))
            if handler is None:
                continue
            row = changed.get(key)
            if row is None:
                row = stored.get(key)
                if row is None:
                    row = model(generation=generation, **{key_field: key})
                changed[key] = row
            handler(self, row, domain, event)
        upsert(model, list(changed.values()), unique=("generation", key_field))
        if self.replaying:
            if len(self._kept) + len(changed) > self.replay_rows_kept:
                self._kept = {}
            self._kept.update(changed)


_projectors: dict[str, Projector] = {}


class ProjectionSubscriber(Subscriber):
    """The subscription of an asynchronous projector: handles batches into the live generation."""

    batch_size: ClassVar[int] = 500

    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.name = projector.name  # type: ignore[misc]  # one subscriber instance per projector name
        self.types = None if projector.stream_types else projector.types  # type: ignore[misc]  # see name

    def handle(self, events: Sequence[Event]) -> None:
        wanted = self.projector.accepted(events)
        if wanted:
            self.projector.project(wanted, generation=live_generation(self.projector.name))


def register(projector: Projector) -> Projector:
    existing = _projectors.get(projector.name)
    if existing is not None and type(existing) is not type(projector):
        raise ValueError(f"projection {projector.name!r} is already registered by {type(existing).__name__}")
    _projectors[projector.name] = projector
    if projector.mode == "async":
        register_subscriber(ProjectionSubscriber(projector))
    return projector


def get(name: str) -> Projector:
    try:
        return _projectors[name]
    except KeyError:
        raise LookupError(f"no projection named {name!r}") from None


def registered() -> list[Projector]:
    return sorted(_projectors.values(), key=lambda projector: projector.name)


def live_generation(name: str, *, share_lock: bool = False) -> int:
    """The live generation of projection ``name``; ``share_lock`` holds off a swap until this transaction ends."""
    table = ProjectionState._meta.db_table
    lock = " FOR SHARE" if share_lock and connection.vendor == "postgresql" else ""
    for _ in range(2):
        with connection.cursor() as cursor:
            sql = f"SELECT live_generation FROM {table} WHERE name = %s{lock}"
            cursor.execute(sql, [name])
            row = cursor.fetchone()
        if row is not None:
            return int(row[0])
        ProjectionState.objects.get_or_create(name=name)
    raise RuntimeError(f"projection state {name!r} vanished")


def inline_wanted(kinds: Collection[tuple[str, str]]) -> bool:
    """Whether any inline projection handles events of these (type, stream type) kinds."""
    return any(
        projector.mode == "inline" and projector.wants(type_, stream_type)
        for projector in _projectors.values()
        for type_, stream_type in kinds
    )


def apply_inline(events: Sequence[StoredEvent]) -> None:
    """Project freshly appended ``events`` into every inline projection, in the appending transaction."""
    for projector in _projectors.values():
        if projector.mode != "inline":
            continue
        if not any(projector.accepts(event) for event in events):
            continue
        projector.project(events, generation=live_generation(projector.name, share_lock=True))


def unknown_types[S: StoredEvent](events: Sequence[S]) -> list[S]:
    known = registered_event_names()
    return [event for event in events if event.type not in known]


def check_known(events: Sequence[StoredEvent]) -> None:
    unknown = unknown_types(events)
    if unknown:
        first = unknown[0]
        raise UnknownEventType(f"event #{first.position} has type {first.type!r}, which no code registers")


# --- status --------------------------------------------------------------------------------------------


# A projection's lag is counted up to this many events.
LAG_COUNTED = 10_000


class ProjectionStatus:
    """What the projections table shows for one projection."""

    def __init__(self, projector: Projector) -> None:
        self.projector = projector
        self.name = projector.name
        self.mode = projector.mode
        self.checkpoint: Checkpoint | None = None
        self.position = 0
        self.lag_events = 0
        self.lag_more = False  # more than lag_events (LAG_COUNTED) events behind
        self.lag_seconds = 0.0
        self.state = "live"
        self.parked = 0
        self.parked_recent: list[ParkedEvent] = []
        self.last_error = ""

    @classmethod
    def of(cls, projector: Projector) -> ProjectionStatus:
        status = cls(projector)
        newest: Cursor = head()
        if projector.mode == "inline":
            status.position = newest[1]
            return status
        checkpoint = Checkpoint.objects.filter(name=projector.name).first()
        status.checkpoint = checkpoint
        cursor: Cursor = checkpoint.cursor if checkpoint else (None, 0)
        status.position = cursor[1]
        status.state = checkpoint.status if checkpoint else "active"
        if checkpoint is not None:
            status.parked = checkpoint.parked.count()
            if status.parked:
                status.parked_recent = list(checkpoint.parked.select_related("event")[:5])
            status.last_error = checkpoint.last_error
            if checkpoint.retry_at is not None and status.state == "active":
                status.state = "retrying"
        if newest == cursor:
            return status
        seen = _count_behind(cursor, projector, LAG_COUNTED + 1)
        status.lag_events = min(seen[0], LAG_COUNTED)
        status.lag_more = seen[0] > LAG_COUNTED
        oldest = Event.objects.order_by("position")
        if status.lag_more:
            # Not all counted, so not the oldest either: the oldest event after the checkpoint is as old or older.
            oldest = oldest.filter(position__gt=cursor[1])
        else:
            oldest = oldest.filter(position=seen[1]) if seen[1] is not None else oldest.none()
        recorded = oldest.values_list("recorded_at", flat=True).first()
        if recorded is not None:
            status.lag_seconds = max(0.0, (timezone.now() - recorded).total_seconds())
        return status


def _behind(cursor: Cursor, projector: Projector) -> list[models.QuerySet[Event]]:
    """The projection's events after ``cursor``, as one query per index that finds them (types, stream types)."""
    queryset: models.QuerySet[Event] = Event.objects.order_by()
    if cursor[0] is not None:
        queryset = queryset.extra(where=["(tx, position) > (%s, %s)"], params=[cursor[0], cursor[1]])  # row comparison
    else:
        queryset = queryset.filter(position__gt=cursor[1])
    parts = [queryset.filter(type__in=projector.types)]
    if projector.stream_types:
        # Spelled as the partial index event_stream_type_pos's condition, so that the database reads it.
        parts.append(queryset.filter(stream_type__in=projector.stream_types).exclude(stream_type=""))
    return parts


def _count_behind(cursor: Cursor, projector: Projector, limit: int) -> tuple[int, int | None]:
    """How many of the projection's events lie after ``cursor`` (up to ``limit``) and the lowest position of those.

    A UNION of one indexed query per part, not one query with OR: with several types, the planners estimate
    the OR to match much of the log and read all of it in position order instead.
    """
    parts = []
    params: list[Any] = []
    for part in _behind(cursor, projector):
        sql, part_params = part.values_list("position").query.sql_with_params()
        parts.append(sql)
        params.extend(part_params)
    union = " UNION ".join(parts)
    with connection.cursor() as db:
        db.execute(
            f'SELECT COUNT(*), MIN("position") FROM (SELECT "position" FROM ({union}) AS parts LIMIT %s) AS behind',
            [*params, limit],
        )
        row = db.fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def wait_until(name: str, position: int, *, timeout: float = 5.0, interval: float = 0.05) -> bool:
    """Read-your-writes for an async projection: wait until it has handled the event at ``position``.

    True once the projection's checkpoint is at or past ``position`` (inline projections always are);
    False after ``timeout`` seconds, so a view can say "still updating" instead of hanging.
    """
    if get(name).mode == "inline":
        return True
    deadline = time.monotonic() + timeout
    while True:
        checkpoint = Checkpoint.objects.filter(name=name).values_list("tx", "position").first()
        if checkpoint is not None and _reached(checkpoint, position):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _reached(checkpoint: tuple[int | None, int], position: int) -> bool:
    if checkpoint[1] >= position:
        return True
    if checkpoint[0] is None:
        return False
    # In commit order the checkpoint may sit on a lower position of a later transaction.
    event = Event.objects.filter(position=position).values_list("tx", flat=True).first()
    return event is not None and (event, position) <= (checkpoint[0], checkpoint[1])
