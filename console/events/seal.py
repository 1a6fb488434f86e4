"""The sealed log: a chain of hashes over the events, which shows any later edit, deletion or insertion.

The sealer is a subscriber: it reads the log in commit order through the gapless reader and writes one seal
per batch, in the transaction that moves its checkpoint. Each event is hashed as one compact JSON array of
its position, type, stream, version, schema version, recorded_at (UTC, to the microsecond) and the database's
text of its data and metadata (see ``event_digest``); the seal keeps every event's position and digest and
hashes them after the previous seal's hash.

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
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from struct import Struct
from typing import Any, ClassVar

from django.db import connection, transaction
from django.db.models import QuerySet

from console.events.conf import events_settings
from console.events.models import Archive, Checkpoint, Event, Seal
from console.events.reader import START, Cursor, uses_xid
from console.events.subscriptions import Subscriber

SEALER = "events.sealer"
GENESIS = "0" * 64
_POSITION = Struct(">q")
ENTRY = _POSITION.size + hashlib.sha256().digest_size
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode = json.JSONDecoder().raw_decode
_string: Callable[[str], str] = json.encoder.encode_basestring  # the C function: quoted, UTF-8 kept
# Rows read per query while verifying, and how many problems one verification lists at most.
CHUNK = 10_000
MAX_PROBLEMS = 20

# One hashed row: position, type, stream type, stream id, version, schema version, and as text recorded_at
# (UTC, microseconds), data and metadata; then tx, which orders the log and is not hashed.
HashedRow = tuple[int, str, str, str, int | None, int, str, str, str, int | None]


def event_digest(row: HashedRow) -> bytes:
    """SHA-256 of one event: a compact JSON array of its hashed columns, the JSON ones as the database's text.

    PostgreSQL renders jsonb in one normalized form and SQLite keeps the text it was given, so the database's
    own text is as stable as a re-encoding and costs no decoding: verifying stays a hash per row. The array
    is spelled out here (``json.dumps(row[:9], separators=(",", ":"), ensure_ascii=False)`` makes the same
    text) because building an encoder per row would cost more than the hash.
    """
    position, type_, stream_type, stream_id, version, schema_version, at, data, metadata = row[:9]
    text = (
        f"[{position},{_string(type_)},{_string(stream_type)},{_string(stream_id)},"
        f"{'null' if version is None else version},{schema_version},{_string(at)},{_string(data)},{_string(metadata)}]"
    )
    return hashlib.sha256(text.encode()).digest()


def seal_hash(previous: str, digests: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(previous) + digests).hexdigest()


def entries(digests: bytes) -> Iterator[tuple[int, bytes]]:
    """(position, digest) of every event a seal holds, in commit order."""
    for start in range(0, len(digests), ENTRY):
        yield _POSITION.unpack_from(digests, start)[0], digests[start + _POSITION.size : start + ENTRY]


def _key(cursor: Cursor) -> tuple[int, int]:
    return (-1 if cursor[0] is None else cursor[0], cursor[1])


# recorded_at as hashed on PostgreSQL: independent of the session's time zone.
_PG_AT = "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
# event_digest's text, built by PostgreSQL: to_json() escapes a string exactly as json.dumps with
# ensure_ascii=False does (the short escapes, \u00xx for other control characters, nothing else).
_PG_TEXT = " || ',' || ".join(
    [
        "'[' || position::text",
        "to_json(type)::text",
        "to_json(stream_type)::text",
        "to_json(stream_id)::text",
        "COALESCE(version::text, 'null')",
        "schema_version::text",
        f"to_json({_PG_AT})::text",
        "to_json(data::text)::text",
        "to_json(metadata::text)::text || ']'",
    ]
)
# A digested row: position, digest, tx.
DigestRow = tuple[int, bytes, int | None]


def _select() -> str:
    """The hashed columns as text, independent of the session's time zone and of Django's converters."""
    table = connection.ops.quote_name(Event._meta.db_table)
    if connection.vendor == "postgresql":
        at = _PG_AT
        json_text = "{}::text"
    else:
        # An expression, not the column: the driver would turn a column declared datetime into a datetime.
        at = "CAST(recorded_at AS TEXT)"
        json_text = "CAST({} AS TEXT)"
    hashed = ["position", "type", "stream_type", "stream_id", "version", "schema_version", at]
    columns = ", ".join([*hashed, json_text.format("data"), json_text.format("metadata"), "tx"])
    return f"SELECT {columns} FROM {table}"


def _select_digests() -> str:
    """Position, digest and tx per event: PostgreSQL hashes in the server, in C; elsewhere the text rows."""
    if connection.vendor != "postgresql":
        return _select()
    table = connection.ops.quote_name(Event._meta.db_table)
    return f"SELECT position, sha256(convert_to({_PG_TEXT}, 'UTF8')), tx FROM {table}"


def _digested(rows: Sequence[Any]) -> list[DigestRow]:
    if connection.vendor == "postgresql":
        return [(position, bytes(digest), tx) for position, digest, tx in rows]
    return [(row[0], event_digest(row), row[9]) for row in rows]


def _range(after: Cursor, upto: Cursor, *, inclusive: bool) -> tuple[str, list[int]]:
    low = ">=" if inclusive else ">"
    if uses_xid():
        # "tx IS NOT NULL": the partial index on (tx, position) is then usable.
        where = f"tx IS NOT NULL AND (tx, position) {low} (%s, %s) AND (tx, position) <= (%s, %s) ORDER BY tx, position"
        return where, [*_key(after), *_key(upto)]
    return f"position {low} %s AND position <= %s ORDER BY position", [after[1], upto[1]]


def digest_rows(after: Cursor, upto: Cursor, *, limit: int, inclusive: bool = False) -> list[DigestRow]:
    """(position, digest, tx) of the events after ``after`` (from it, when ``inclusive``) up to ``upto``."""
    where, params = _range(after, upto, inclusive=inclusive)
    with connection.cursor() as cursor:
        cursor.execute(f"{_select_digests()} WHERE {where} LIMIT %s", [*params, limit])
        return _digested(cursor.fetchall())


def hashed_rows_at(positions: Sequence[int]) -> list[HashedRow]:
    """The rows at ``positions``, in position order, as hashed."""
    marks = ", ".join(["%s"] * len(positions))
    with connection.cursor() as cursor:
        cursor.execute(f"{_select()} WHERE position IN ({marks}) ORDER BY position", list(positions))
        rows: list[HashedRow] = cursor.fetchall()  # rows of the selected columns
        return rows


class Sealer(Subscriber):
    """Seals every event of the log, a batch at a time, in commit order."""

    name: ClassVar[str] = SEALER
    batch_size: ClassVar[int] = 2000
    # Only the cursors: the batch is read again as the text that is hashed.
    columns: ClassVar[tuple[str, ...] | None] = ("position", "tx")
    # A batch only fails when the database does; the subscriber's retries are enough.
    max_attempts: ClassVar[int] = 1000

    def handle(self, events: Sequence[Event]) -> None:
        xid = uses_xid()
        first: Cursor = (events[0].tx if xid else None, events[0].position)
        last: Cursor = (events[-1].tx if xid else None, events[-1].position)
        # The batch again, as text: every row between its first and last cursor has committed (the reader
        # handed them over), so the range holds exactly these events.
        rows = digest_rows(first, last, limit=len(events), inclusive=True)
        if [row[0] for row in rows] != [event.position for event in events]:
            raise RuntimeError("the sealed range does not hold the batch's events")
        blob = b"".join(_POSITION.pack(position) + digest for position, digest, _ in rows)
        previous = Seal.objects.order_by("-pk").values_list("hash", flat=True).first() or GENESIS
        positions = [event.position for event in events]
        Seal.objects.create(
            first_tx=first[0],
            first_position=first[1],
            last_tx=last[0],
            last_position=last[1],
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


def _digests(upto: Cursor) -> Generator[tuple[tuple[int, int], int, bytes]]:
    """(reader key, position, digest) of every event up to ``upto``, in the reader's order.

    One query, streamed through a server-side cursor on PostgreSQL: keyset pages would each have the
    planner choose again, and a plan that sorts the whole range per page is much slower than one index scan.
    """
    xid = uses_xid()
    if xid:
        where, params = "tx IS NOT NULL AND (tx, position) <= (%s, %s) ORDER BY tx, position", [*_key(upto)]
    else:
        where, params = "position <= %s ORDER BY position", [upto[1]]
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"{_select_digests()} WHERE {where}", params)
        while rows := cursor.fetchmany(CHUNK):
            for position, digest, tx in _digested(rows):
                yield (tx if xid and tx is not None else -1, position), position, digest


# --- archives ----------------------------------------------------------------------------------------------------


def archive_path(name: str) -> Path:
    return Path(events_settings().archive_dir) / name


def archive_line(row: HashedRow, actor_id: int | None) -> str:
    """One event as a line of an archive: ``[columns, data, metadata]``, the JSON columns verbatim.

    A JSON array any reader can load; ``archived_row`` finds the exact texts again (see ``event_digest``).
    """
    position, type_, stream_type, stream_id, version, schema_version, at, data, metadata, tx = row
    head = _encode(
        {
            "position": position,
            "tx": tx,
            "type": type_,
            "stream_type": stream_type,
            "stream_id": stream_id,
            "version": version,
            "schema_version": schema_version,
            "recorded_at": at,
            "actor_id": actor_id,
        }
    )
    return f"[{head},{data},{metadata}]"


def archived_row(line: str) -> HashedRow:
    head, end = _decode(line, 1)
    data_start = end + 1
    _, data_end = _decode(line, data_start)
    _, metadata_end = _decode(line, data_end + 1)
    return (
        head["position"],
        head["type"],
        head["stream_type"],
        head["stream_id"],
        head["version"],
        head["schema_version"],
        head["recorded_at"],
        line[data_start:data_end],
        line[data_end + 1 : metadata_end],
        head["tx"],
    )


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
            rows = [archived_row(line.rstrip("\n")) for line in lines]
        return {row[0]: event_digest(row) for row in rows}


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
    # One transaction: the seals' and the log's server-side cursors stay open together until the end.
    with transaction.atomic():
        result = _verify()
    result.seconds = time.perf_counter() - started
    return result


def _verify() -> Verification:
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
        events.close()
        result.head = previous
        result.sealed_to = head.last_position
    checkpoint = Checkpoint.objects.filter(name=SEALER).first()
    sealed = START if head is None else head.last_cursor
    if checkpoint is not None and _key(checkpoint.cursor) > _key(sealed):
        result.add(Problem("seal", f"the sealer read past #{sealed[1]} but the seals after it are missing"))
    result.unsealed = unsealed_count(head)
    return result
