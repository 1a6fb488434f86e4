"""Stored events without model instances: what replays read and what aggregate saves return.

Building an ``Event`` instance costs more than the database spends reading or writing its row, and code that
handles events by the thousand (rebuilds, projections, saves) needs only the columns. ``Record`` carries
them, without ``metadata`` (decoding it is much of a replay's cost and no projection reads it). Code that
handles stored events asks for ``StoredEvent``, which ``Event`` instances satisfy as well, so a projector's
handlers serve subscribers (model instances) and replays (records) alike. ``StreamRef`` is how a model that
writes to the log names its stream.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple, Protocol, TypedDict


class StoredEvent(Protocol):
    """What handlers of stored events may read, whether given an ``Event`` or a ``Record``."""

    @property
    def position(self) -> int: ...
    @property
    def tx(self) -> int | None: ...
    @property
    def stream_type(self) -> str: ...
    @property
    def stream_id(self) -> str: ...
    @property
    def version(self) -> int | None: ...
    @property
    def type(self) -> str: ...
    @property
    def schema_version(self) -> int: ...
    @property
    def data(self) -> Any: ...
    @property
    def actor_id(self) -> int | None: ...
    @property
    def recorded_at(self) -> datetime: ...


class Record(NamedTuple):
    """One row of the log, read or written without the ORM's model machinery."""

    position: int
    tx: int | None
    stream_type: str
    stream_id: str
    version: int | None
    type: str
    schema_version: int
    data: dict[str, Any]
    actor_id: int | None
    recorded_at: datetime


# The log's columns a record is read from, in the record's order.
RECORD_COLUMNS: tuple[str, ...] = Record._fields


class StreamRef(TypedDict):
    """Which stream an event belongs to, as models that write to the log name theirs: ``emit(..., **stream)``."""

    stream_type: str
    stream_id: str
