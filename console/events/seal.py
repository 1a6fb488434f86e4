"""The sealed log: a chain of hashes over the events, which shows any later edit, deletion or insertion.

The sealer is a subscriber: it reads the log in commit order through the gapless reader and writes one seal
per batch, in the transaction that moves its checkpoint. Each event is hashed over its canonical JSON
(position, type, stream, version, schema version, recorded_at, data, metadata: sorted keys, no spaces, UTF-8);
the seal keeps every event's position and digest and hashes them after the previous seal's hash.

``verify()`` reads the log once in the same order and recomputes everything: the first event whose digest
differs (changed), that a seal holds but the log lacks and no archive holds (deleted), or that sits in a
sealed range without being sealed (inserted) is named. Events the sealer has not reached are reported as
not sealed yet, never as a problem. The actor is not hashed: deleting a user empties it legitimately.

The chain proves the log and the seals agree; someone who can rewrite both from some seal on can rebuild
the tail. Recording the head hash elsewhere (``events verify`` prints it) closes that.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from struct import Struct
from typing import Any, ClassVar

from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime

from console.events.conf import events_settings
from console.events.models import Archive, Checkpoint, Event, Seal
from console.events.reader import START, Cursor, uses_xid
from console.events.subscriptions import Subscriber

SEALER = "events.sealer"
GENESIS = "0" * 64
_POSITION = Struct(">q")
ENTRY = _POSITION.size + hashlib.sha256().digest_size
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
# The columns an event is hashed over, read from the log in this order (``tx`` orders, it is not hashed).
COLUMNS = (
    "tx",
    "position",
    "type",
    "stream_type",
    "stream_id",
    "version",
    "schema_version",
    "recorded_at",
    "data",
    "metadata",
)
# Rows read per query while verifying, and how many problems one verification lists at most.
CHUNK = 10_000
MAX_PROBLEMS = 20


def moment(recorded_at: datetime) -> str:
    """``recorded_at`` as hashed: ISO 8601 in UTC (whatever zone the driver handed it in)."""
    return recorded_at.astimezone(UTC).isoformat()


def event_digest(
    position: int,
    type_: str,
    stream_type: str,
    stream_id: str,
    version: int | None,
    schema_version: int,
    recorded_at: str,
    data: Any,
    metadata: Any,
) -> bytes:
    """SHA-256 of one event's canonical JSON (``recorded_at`` already through ``moment()``)."""
    text = _encode([position, type_, stream_type, stream_id, version, schema_version, recorded_at, data, metadata])
    return hashlib.sha256(text.encode()).digest()


def seal_hash(previous: str, digests: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + digests).hexdigest()


def entries(digests: bytes) -> Iterator[tuple[int, bytes]]:
    """(position, digest) of every event a seal holds, in commit order."""
    for start in range(0, len(digests), ENTRY):
        yield _POSITION.unpack_from(digests, start)[0], digests[start + _POSITION.size : start + ENTRY]


def _key(cursor: Cursor) -> tuple[int, int]:
    return (-1 if cursor[0] is None else cursor[0], cursor[1])


class Sealer(Subscriber):
    """Seals every event of the log, a batch at a time, in commit order."""

    name: ClassVar[str] = SEALER
    batch_size: ClassVar[int] = 2000
    # A batch only fails when the database does; the subscriber's retries are enough.
    max_attempts: ClassVar[int] = 1000

    def handle(self, events: Sequence[Event]) -> None:
        blob = b"".join(
            _POSITION.pack(event.position)
            + event_digest(
                event.position,
                event.type,
                event.stream_type,
                event.stream_id,
                event.version,
                event.schema_version,
                moment(event.recorded_at),
                event.data,
                event.metadata,
            )
            for event in events
        )
        previous = Seal.objects.order_by("-pk").values_list("hash", flat=True).first() or GENESIS
        xid = uses_xid()
        positions = [event.position for event in events]
        Seal.objects.create(
            first_tx=events[0].tx if xid else None,
            first_position=events[0].position,
            last_tx=events[-1].tx if xid else None,
            last_position=events[-1].position,
            min_position=min(positions),
            max_position=max(positions),
            count=len(events),
            digests=blob,
            previous_hash=previous,
            hash=seal_hash(previous, blob),
        )


# --- reading the log to verify it --------------------------------------------------------------------------------


def in_order(queryset: QuerySet[Event], after: Cursor, *, upto: Cursor | None) -> QuerySet[Event]:
    """Events after ``after`` (and up to ``upto``, inclusive) in the reader's order, with no horizon.

    The sealed part of the log is behind the sealer's checkpoint, so nothing can still commit into it.
    """
    if uses_xid():
        where = ["(tx, position) > (%s, %s)"]  # row comparison has no ORM spelling
        params: list[int] = [*_key(after)]
        if upto is not None:
            where.append("(tx, position) <= (%s, %s)")
            params += [*_key(upto)]
        return queryset.extra(where=where, params=params).order_by("tx", "position")
    queryset = queryset.filter(position__gt=after[1])
    if upto is not None:
        queryset = queryset.filter(position__lte=upto[1])
    return queryset.order_by("position")


def _fetch(after: Cursor, upto: Cursor, limit: int) -> list[tuple[Any, ...]]:
    rows = in_order(Event.objects.all(), after, upto=upto).values_list(*COLUMNS)[:limit]
    if connection.vendor != "postgresql" or not settings.USE_TZ:
        return list(rows)
    # As the reader's read_records: psycopg's own loaders skip Django's per-row converters, the JSON
    # columns arrive as text and are decoded below.
    from psycopg.types.datetime import TimestamptzLoader

    sql, params = rows.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.cursor.adapters.register_loader("timestamptz", TimestamptzLoader)
        cursor.execute(sql, params)
        return [
            (tx, position, type_, stream_type, stream_id, version, schema, at, json.loads(data), json.loads(meta))
            for tx, position, type_, stream_type, stream_id, version, schema, at, data, meta in cursor.fetchall()
        ]


def _digests(upto: Cursor) -> Iterator[tuple[tuple[int, int], int, bytes]]:
    """(reader key, position, digest) of every event up to ``upto``, in the reader's order."""
    xid = uses_xid()
    after: Cursor = START
    while True:
        rows = _fetch(after, upto, CHUNK)
        for tx, position, type_, stream_type, stream_id, version, schema, at, data, meta in rows:
            digest = event_digest(position, type_, stream_type, stream_id, version, schema, moment(at), data, meta)
            yield (tx if xid and tx is not None else -1, position), position, digest
        if len(rows) < CHUNK:
            return
        last = rows[-1]
        after = (last[0] if xid else None, last[1])


# --- archives ----------------------------------------------------------------------------------------------------


def archive_path(name: str) -> Path:
    return Path(events_settings().archive_dir) / name


def archive_line(row: dict[str, Any]) -> str:
    """One event as a line of an archive: every column, ``recorded_at`` as hashed."""
    return _encode({**row, "recorded_at": moment(row["recorded_at"])})


def sealed_cursor() -> Cursor | None:
    """How far the sealer has sealed; None when sealing is off (then nothing holds retention back)."""
    if not events_settings().seal:
        return None
    checkpoint = Checkpoint.objects.filter(name=SEALER).first()
    return START if checkpoint is None else checkpoint.cursor


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def archived_line(row: dict[str, Any]) -> tuple[int, bytes]:
    """(position, digest) of one line of an archive."""
    at = parse_datetime(row["recorded_at"])
    if at is None:
        raise ValueError(f"recorded_at {row['recorded_at']!r} is not a date and time")
    digest = event_digest(
        row["position"],
        row["type"],
        row["stream_type"],
        row["stream_id"],
        row["version"],
        row["schema_version"],
        moment(at),
        row["data"],
        row["metadata"],
    )
    return row["position"], digest


class _Archives:
    """Archive files opened while verifying, by name: checked against their checksum once, then kept."""

    def __init__(self) -> None:
        self.records = {archive.name: archive for archive in Archive.objects.all()}
        self.loaded: dict[str, dict[int, bytes] | str] = {}

    def problem(self, name: str) -> str:
        """Empty when archive ``name`` exists and matches its checksum, else what is wrong with it."""
        loaded = self.load(name)
        return loaded if isinstance(loaded, str) else ""

    def load(self, name: str) -> dict[int, bytes] | str:
        if name not in self.loaded:
            self.loaded[name] = self._read(name)
        return self.loaded[name]

    def _read(self, name: str) -> dict[int, bytes] | str:
        record = self.records.get(name)
        if record is None:
            return f"archive {name} is named by a seal but not recorded"
        path = archive_path(name)
        if not path.is_file():
            return f"archive {name} is missing from {path.parent}"
        if file_sha256(path) != record.sha256:
            return f"archive {name} does not match its checksum"
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            return dict(archived_line(json.loads(line)) for line in lines)


# --- verifying ---------------------------------------------------------------------------------------------------


@dataclass
class Problem:
    kind: str  # changed, deleted, inserted, seal, archive
    text: str
    position: int | None = None


@dataclass
class Verification:
    seals: int = 0
    checked: int = 0
    archived: int = 0
    unsealed: int = 0
    sealed_to: int | None = None
    head: str = GENESIS
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    more_problems: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, problem: Problem) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(problem)
        else:
            self.more_problems = True

    def summary(self) -> str:
        sealed = f"{self.checked} events in {self.seals} seals checked"
        if self.archived:
            sealed += f", {self.archived} of them from archives"
        pending = f"; {self.unsealed} newer events not sealed yet" if self.unsealed else ""
        if self.ok:
            return f"The log is intact: {sealed}{pending}."
        return f"The log was tampered with: {self.problems[0].text} ({sealed}{pending})."

    def as_data(self) -> dict[str, Any]:
        """What the log.verified event records."""
        first = self.problems[0] if self.problems else None
        return {
            "ok": self.ok,
            "seals": self.seals,
            "checked": self.checked,
            "archived": self.archived,
            "unsealed": self.unsealed,
            "head": self.head,
            "problem": first.text if first else "",
            "position": first.position if first else None,
            "problems": len(self.problems),
        }


def _check_seal(
    seal: Seal, actual: dict[int, bytes], archives: _Archives, result: Verification, digests: bytes
) -> None:
    found: list[Problem] = []
    for name in seal.archives:
        wrong = archives.problem(name)
        if wrong:
            found.append(Problem("archive", wrong))
    for position, digest in entries(digests):
        present = actual.pop(position, None)
        if present is not None:
            if present != digest:
                found.append(Problem("changed", f"event #{position} was changed after seal {seal.pk}", position))
            else:
                result.checked += 1
            continue
        kept = [archives.load(name) for name in seal.archives]
        archived = next((copy[position] for copy in kept if isinstance(copy, dict) and position in copy), None)
        if archived is None:
            found.append(Problem("deleted", f"event #{position} was deleted (seal {seal.pk})", position))
        elif archived != digest:
            found.append(Problem("changed", f"event #{position} was changed in its archive (seal {seal.pk})", position))
        else:
            result.checked += 1
            result.archived += 1
    for position in actual:
        found.append(Problem("inserted", f"event #{position} was inserted into seal {seal.pk}'s range", position))
    for each in sorted(found, key=lambda problem: -1 if problem.position is None else problem.position):
        result.add(each)


def unsealed_count(head: Seal | None) -> int:
    """How many events of the log are newer than the newest seal ``head``."""
    return in_order(Event.objects.all(), START if head is None else head.last_cursor, upto=None).count()


def verify() -> Verification:
    """Recompute the chain of seals over the log; see the module's docstring."""
    started = time.perf_counter()
    result = Verification()
    archives = _Archives()
    seals = Seal.objects.order_by("pk")
    head = seals.last()
    if head is not None:
        events = _digests(head.last_cursor)
        pending = next(events, None)
        previous = GENESIS
        for seal in seals.iterator(chunk_size=200):
            digests = bytes(seal.digests)
            # Chained on what the seal before it should hash to, so one altered seal is one problem.
            recomputed = seal_hash(previous, digests)
            if seal.previous_hash != previous:
                result.add(Problem("seal", f"seal {seal.pk} does not follow the seal before it (altered or removed)"))
            elif recomputed != seal.hash:
                result.add(Problem("seal", f"seal {seal.pk} was altered"))
            previous = recomputed
            limit = _key(seal.last_cursor)
            actual: dict[int, bytes] = {}
            while pending is not None and pending[0] <= limit:
                actual[pending[1]] = pending[2]
                pending = next(events, None)
            _check_seal(seal, actual, archives, result, digests)
            result.seals += 1
        result.head = previous
        result.sealed_to = head.last_position
    checkpoint = Checkpoint.objects.filter(name=SEALER).first()
    sealed = START if head is None else head.last_cursor
    if checkpoint is not None and _key(checkpoint.cursor) > _key(sealed):
        result.add(Problem("seal", f"the sealer read past #{sealed[1]} but the seals after it are missing"))
    result.unsealed = unsealed_count(head)
    result.seconds = time.perf_counter() - started
    return result
