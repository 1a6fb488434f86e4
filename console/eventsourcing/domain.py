"""Typed domain events, upcasters and aggregates: the write side, with no Django model in it.

A domain event is a frozen dataclass registered under a stable name and a schema version (and declared in
the events catalog, so the audit log and webhooks know it). Stored payloads of older schema versions are
converted on read by upcasters, chained one version at a time. An aggregate is a plain class: command
methods check invariants and ``trigger`` events; one ``@applies`` handler per event type changes state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, Self, TypeVar

from console.events.catalog import declare

if TYPE_CHECKING:
    from console.events.records import StoredEvent


class DomainError(Exception):
    """A command broke an invariant: shown to the user, and nothing is appended."""


class ConcurrencyError(Exception):
    """Someone else appended to the stream since it was loaded: reload and retry the command."""


class StreamNotFound(LookupError):
    pass


class UnknownEventType(LookupError):
    """The log holds an event type that no code registers (removed or renamed)."""


class UpcastError(ValueError):
    """A stored payload could not be converted to the event's current schema."""


_SCALARS = frozenset({str, int, float, bool, type(None)})


@dataclasses.dataclass(frozen=True, kw_only=True)
class DomainEvent:
    """Base of every domain event; subclasses are frozen, keyword-only dataclasses of JSON-safe fields."""

    event_name: ClassVar[str] = ""
    schema_version: ClassVar[int] = 1

    def payload(self) -> dict[str, Any]:
        """The fields as stored: JSON-safe values, nested dataclasses as dicts (as ``dataclasses.asdict``)."""
        names: tuple[str, ...] | None = type(self).__dict__.get("_field_names")  # set by @domain_event
        if names is not None:
            values = {name: getattr(self, name) for name in names}
            # Flat events (the usual kind) need none of asdict's recursive copying, which costs more per event
            # than its insert does.
            if all(type(value) in _SCALARS for value in values.values()):
                return values
        return dataclasses.asdict(self)


E = TypeVar("E", bound=type[DomainEvent])
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]

_events: dict[str, type[DomainEvent]] = {}
_upcasters: dict[tuple[str, int], Upcaster] = {}


def domain_event(name: str, *, version: int = 1, audit: bool = False) -> Callable[[E], E]:
    """Register a domain event class under ``name`` at schema ``version`` and declare it in the catalog."""

    def register(cls: E) -> E:
        if not dataclasses.is_dataclass(cls):
            raise TypeError(f"{cls.__name__} must be a dataclass")
        existing = _events.get(name)
        if existing is not None and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"domain event {name!r} is already registered by {existing.__qualname__}")
        cls.event_name = name
        cls.schema_version = version
        fields = dataclasses.fields(cls)
        cls._field_names = tuple(f.name for f in fields)  # type: ignore[attr-defined]  # read by payload()
        required = [
            f.name for f in fields if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        declare(
            name,
            description=(cls.__doc__ or name).strip().splitlines()[0],
            required=required,
            optional=[f.name for f in fields if f.name not in required],
            schema_version=version,
            audit=audit,
        )
        _events[name] = cls
        return cls

    return register


def upcaster(name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
    """Register the function that turns a ``name`` payload of ``from_version`` into ``from_version + 1``."""

    def register(func: Upcaster) -> Upcaster:
        _upcasters[(name, from_version)] = func
        return func

    return register


def event_class(name: str) -> type[DomainEvent]:
    try:
        return _events[name]
    except KeyError:
        raise UnknownEventType(f"event type {name!r} is in the log but no code registers it") from None


def registered_event_names() -> frozenset[str]:
    return frozenset(_events)


def upcast(name: str, schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` stored at ``schema_version`` converted to the current schema of ``name``."""
    current = event_class(name).schema_version
    if schema_version > current:
        raise UpcastError(f"{name} v{schema_version} is newer than the code's v{current}")
    version = schema_version
    while version < current:
        step = _upcasters.get((name, version))
        if step is None:
            raise UpcastError(f"no upcaster for {name} from v{version} to v{version + 1}")
        try:
            data = step(dict(data))
        except Exception as exc:
            raise UpcastError(f"upcasting {name} v{version}: {exc}") from exc
        version += 1
    return data


def to_domain(event: StoredEvent) -> DomainEvent:
    """The typed domain event of a stored log row, upcast to the current schema."""
    cls = event_class(event.type)
    data = event.data
    if event.schema_version != cls.schema_version:
        data = upcast(event.type, event.schema_version, data)
    try:
        return cls(**data)
    except TypeError as exc:
        raise UpcastError(f"{event.type} #{event.position}: {exc}") from exc


A = TypeVar("A", bound="Aggregate")
Handler = Callable[[Any, Any], None]


def applies(event_cls: type[DomainEvent]) -> Callable[[Handler], Handler]:
    """Mark an aggregate method as the state change of ``event_cls``."""

    def mark(func: Handler) -> Handler:
        func.applies_to = event_cls  # type: ignore[attr-defined]  # read by Aggregate.__init_subclass__
        return func

    return mark


class Aggregate:
    """A consistency boundary: commands check invariants and trigger events; handlers change state.

    State is the instance's public attributes (JSON-safe values), which is what snapshots store. Bump
    ``schema_version`` when the state's shape changes: older snapshots are then ignored.
    """

    stream_type: ClassVar[str]
    schema_version: ClassVar[int] = 1
    snapshot_every: ClassVar[int] = 0
    _handlers: ClassVar[dict[type[DomainEvent], Handler]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = dict(cls._handlers)
        for value in vars(cls).values():
            target = getattr(value, "applies_to", None)
            if target is not None:
                handlers[target] = value
        cls._handlers = handlers
        if getattr(cls, "stream_type", ""):
            _aggregates[cls.stream_type] = cls

    def __init__(self, id: str) -> None:
        self.id = id
        self.version = 0
        self._pending: list[DomainEvent] = []

    @classmethod
    def blank(cls, id: str) -> Self:
        return cls(id)

    def trigger(self, event: DomainEvent) -> None:
        self.apply(event)
        self._pending.append(event)

    def apply(self, event: DomainEvent) -> None:
        handler = self._handlers.get(type(event))
        if handler is None:
            raise UnknownEventType(f"{type(self).__name__} has no handler for {event.event_name}")
        handler(self, event)
        self.version += 1

    def pending(self) -> list[DomainEvent]:
        return list(self._pending)

    def mark_saved(self) -> None:
        self._pending.clear()

    def state(self) -> dict[str, Any]:
        return {key: value for key, value in vars(self).items() if not key.startswith("_")}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        aggregate = cls.__new__(cls)
        aggregate.__dict__.update(state)
        aggregate._pending = []
        return aggregate


_aggregates: dict[str, type[Aggregate]] = {}


def aggregate_class(stream_type: str) -> type[Aggregate]:
    try:
        return _aggregates[stream_type]
    except KeyError:
        raise LookupError(f"no aggregate handles streams of type {stream_type!r}") from None
