"""The sealed log: a chain of hashes over the events, which shows any later edit, deletion or insertion.

The sealer is a subscriber: it reads the log in commit order through the gapless reader and writes one seal
per batch, in the transaction that moves its checkpoint. Each event is hashed as one compact JSON array of
its position, type, stream, version, schema version, recorded_at (UTC, to the microsecond) and the database's
text of its data and metadata (see ``event_digest``); the seal keeps every event's position and digest and
hashes them after the previous seal's hash.

``verify()`` reads the log once in the same order, a chunk of seals at a time (so a background operation can
report progress and stop between chunks), and recomputes everything: the first event whose digest differs
(changed), that a seal holds but the log lacks and no archive holds (deleted), or that sits in a sealed range
without being sealed (inserted) is named. On PostgreSQL the server hashes a chunk's events into the string its
seals hold, and only a chunk that differs is compared event by event. Events the sealer has not reached are
reported as not sealed yet, never as a problem. The actor is not hashed: deleting a user empties it legitimately.

The chain proves the log and the seals agree; someone who can rewrite both from some seal on can rebuild
the tail. Recording the head hash elsewhere (``events verify`` prints it) closes that.

This module is longer than most: the hashed text, the archive lines and the verification must agree byte for
byte, so what writes the format and what reads it back stay side by side.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from struct import Struct
from typing import Any, ClassVar, NamedTuple, cast

from django.db import connection
from django.db.models import QuerySet, Sum

from console.events.conf import events_settings
from console.events.models import Archive, Checkpoint, Event, Seal
from console.events.reader import START, Cursor, read_values, uses_xid
from console.events.records import StoredEvent
from console.events.subscriptions import Subscriber

SEALER = "events.sealer"
GENESIS = "0" * 64
_POSITION = Struct(">q")
ENTRY = _POSITION.size + hashlib.sha256().digest_size
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_decode = json.JSONDecoder().raw_decode
_string: Callable[[str], str] = json.encoder.encode_basestring  # the C function: quoted, UTF-8 kept
# About how many events one chunk of a verification reads (one query), and how many problems it lists at most.
CHUNK = 20_000
MAX_PROBLEMS = 20
# Seals one chunk takes at most: a quiet log has seals of one event each.
CHUNK_SEALS = 2_000

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


class Digested(NamedTuple):
    """One event as the sealer reads it on PostgreSQL: its cursor and its digest, computed by the server."""

    position: int
    tx: int | None
    digest: bytes


class Sealer(Subscriber):
    """Seals every event of the log, a batch at a time, in commit order."""

    name: ClassVar[str] = SEALER
    batch_size: ClassVar[int] = 2000
    # Only the cursors: the batch is read again as the text that is hashed (PostgreSQL: see ``read``).
    columns: ClassVar[tuple[str, ...] | None] = ("position", "tx")
    # A batch only fails when the database does; the subscriber's retries are enough.
    max_attempts: ClassVar[int] = 1000

    def read(self, after: Cursor) -> Sequence[StoredEvent]:
        """On PostgreSQL the reader's own query hashes each event: one statement per batch, no model per event.

        The reader hands over only committed rows, so the digest computed in its statement is the sealed text.
        """
        if connection.vendor != "postgresql":
            return super().read(after)
        digest = f"sha256(convert_to({_PG_TEXT}, 'UTF8'))"
        rows = read_values(
            after, limit=self.batch_size, fields=("position", "tx", "digest"), computed={"digest": digest}
        )
        return cast(list[StoredEvent], [Digested(position, tx, bytes(sha)) for position, tx, sha in rows])

    def handle(self, events: Sequence[Event]) -> None:
        xid = uses_xid()
        first: Cursor = (events[0].tx if xid else None, events[0].position)
        last: Cursor = (events[-1].tx if xid else None, events[-1].position)
        positions = [event.position for event in events]
        read: object = events[0]  # what ``read`` returned: Digested rows on PostgreSQL
        if isinstance(read, Digested):
            digested = cast(Sequence[Digested], events)
            blob = b"".join(_POSITION.pack(event.position) + event.digest for event in digested)
        else:
            # The batch again, as text: every row between its first and last cursor has committed (the reader
            # handed them over), so the range holds exactly these events.
            rows = digest_rows(first, last, limit=len(events), inclusive=True)
            if [row[0] for row in rows] != positions:
                raise RuntimeError("the sealed range does not hold the batch's events")
            blob = b"".join(_POSITION.pack(position) + digest for position, digest, _ in rows)
        previous = Seal.objects.order_by("-pk").values_list("hash", flat=True).first() or GENESIS
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


def _between(after: tuple[int, int] | None, upto: tuple[int, int]) -> tuple[str, list[int], str]:
    """WHERE and ORDER BY for the events after ``after`` (from the start when None) up to ``upto``.

    Both ends bound the index range, so each chunk is one index scan of its own events.
    """
    if uses_xid():
        where, params = "tx IS NOT NULL AND (tx, position) <= (%s, %s)", [*upto]
        if after is not None:
            where, params = f"{where} AND (tx, position) > (%s, %s)", [*params, *after]
        return where, params, "tx, position"
    where, params = "position <= %s", [upto[1]]
    if after is not None:
        where, params = f"{where} AND position > %s", [*params, after[1]]
    return where, params, "position"


def _digests(after: tuple[int, int] | None, upto: tuple[int, int]) -> list[tuple[tuple[int, int], int, bytes]]:
    """(reader key, position, digest) of every event of a range (see ``_between``), in the reader's order."""
    where, params, order = _between(after, upto)
    with connection.cursor() as cursor:
        cursor.execute(f"{_select_digests()} WHERE {where} ORDER BY {order}", params)
        rows = _digested(cursor.fetchall())
    xid = uses_xid()
    return [((tx if xid and tx is not None else -1, position), position, digest) for position, digest, tx in rows]


def _sealed_text(after: tuple[int, int] | None, upto: tuple[int, int]) -> bytes:
    """What seals over a range should hold, computed by PostgreSQL from the events: each event's position
    (8 bytes, big-endian, as ``_POSITION`` packs it) and digest, in the reader's order, as one string."""
    where, params, order = _between(after, upto)
    table = connection.ops.quote_name(Event._meta.db_table)
    entry = f"int8send(position::bigint) || sha256(convert_to({_PG_TEXT}, 'UTF8'))"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT string_agg({entry}, ''::bytea ORDER BY {order}) FROM {table} WHERE {where}", params)
        found = cursor.fetchone()
    return b"" if found is None or found[0] is None else bytes(found[0])


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
        record = self.records.get(name) or Archive.objects.filter(name=name).first()  # one written meanwhile
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


# Called after each chunk of seals with the events it held and the total sealed; it may raise to stop.
Progress = Callable[[int, int], object]


def verify(*, after_chunk: Progress | None = None) -> Verification:
    """Recompute the chain of seals over the log; see the module's docstring.

    It reads the seals up to the newest one present when it starts, a chunk of about ``CHUNK`` events at a
    time, each chunk's events by one query, and reports each chunk to ``after_chunk`` (a background
    operation's progress and its chance to cancel). No transaction spans the chunks, so progress reported
    in between is visible at once; the sealed range does not move under it (see ``_verify_chunk`` for
    retention archiving meanwhile).
    """
    started = time.perf_counter()
    result = Verification()
    head = Seal.objects.order_by("-pk").first()
    if head is not None:
        total = Seal.objects.filter(pk__lte=head.pk).aggregate(total=Sum("count"))["total"] or 0
        if after_chunk is not None:
            after_chunk(0, total)
        chain = _Chain(head, _Archives())
        while seals := chain.next_seals():
            chain.check(seals, result)
            if after_chunk is not None:
                after_chunk(sum(seal.count for seal in seals), total)
        result.head = chain.previous
        result.sealed_to = head.last_position
    # The checkpoint first, then the newest seal: the sealer commits the two together, so the seal covering
    # the checkpoint read is there unless seals were removed, even if the sealer went on while this ran.
    checkpoint = Checkpoint.objects.filter(name=SEALER).first()
    newest = Seal.objects.order_by("-pk").first()
    sealed = START if newest is None else newest.last_cursor
    if checkpoint is not None and _key(checkpoint.cursor) > _key(sealed):
        result.add(Problem("seal", f"the sealer read past #{sealed[1]} but the seals after it are missing"))
    result.unsealed = unsealed_count(head)
    result.seconds = time.perf_counter() - started
    return result


class _Chain:
    """Where a verification got to: the last seal checked, the hash it should have, the events read ahead."""

    def __init__(self, head: Seal, archives: _Archives) -> None:
        self.head = head
        self.archives = archives
        self.after_pk = 0
        self.previous = GENESIS
        self.read_to: tuple[int, int] | None = None
        self.pending: deque[tuple[tuple[int, int], int, bytes]] = deque()

    def next_seals(self) -> list[Seal]:
        """The next seals holding about ``CHUNK`` events between them (at least one), up to the head."""
        later = Seal.objects.filter(pk__gt=self.after_pk, pk__lte=self.head.pk).order_by("pk")
        upto, held = None, 0
        for pk, count in later.values_list("pk", "count")[:CHUNK_SEALS]:
            upto, held = pk, held + count
            if held >= CHUNK:
                break
        if upto is None:
            return []
        seals = list(later.filter(pk__lte=upto))
        self.after_pk = seals[-1].pk
        return seals

    def check(self, seals: list[Seal], result: Verification) -> None:
        # Events are read once, in the reader's order, up to the furthest cursor of these seals; a seal whose
        # cursor was moved back leaves its events to the seals after it, which name them as inserted.
        limits = [_key(seal.last_cursor) for seal in seals]
        limit = min(max(limits), _key(self.head.last_cursor))
        whole = False
        if self.read_to is None or limit > self.read_to:
            start, self.read_to = self.read_to, limit
            whole = self._intact(seals, start, limits)
            if not whole:
                self.pending.extend(_digests(start, limit))
        # Read after the events: retention names its archive in the seals in the transaction that deletes the
        # events, so an event archived meanwhile is found in the archive its seal now names, not "deleted".
        named = dict(Seal.objects.filter(pk__in=[seal.pk for seal in seals]).values_list("pk", "archives"))
        for seal in seals:
            seal.archives = named.get(seal.pk, seal.archives)
            digests = bytes(seal.digests)
            # Chained on what the seal before it should hash to, so one altered seal is one problem.
            recomputed = seal_hash(self.previous, digests)
            if seal.previous_hash != self.previous:
                result.add(Problem("seal", f"seal {seal.pk} does not follow the seal before it (altered or removed)"))
            elif recomputed != seal.hash:
                result.add(Problem("seal", f"seal {seal.pk} was altered"))
            self.previous = recomputed
            result.seals += 1
            if whole:
                result.checked += len(digests) // ENTRY
                continue
            seal_limit = _key(seal.last_cursor)
            actual: dict[int, bytes] = {}
            while self.pending and self.pending[0][0] <= seal_limit:
                _, position, digest = self.pending.popleft()
                actual[position] = digest
            _check_seal(seal, actual, self.archives, result, digests)

    def _intact(self, seals: list[Seal], start: tuple[int, int] | None, limits: list[tuple[int, int]]) -> bool:
        """Whether the events from ``start`` to the last seal's cursor are exactly what the seals hold.

        The common case, asked of PostgreSQL only: the server hashes the chunk's events into the one string the
        seals should hold between them, so an intact chunk costs no work per event here. Seals that name an
        archive, or whose cursors are out of order, and a chunk that differs in any way are looked at event by
        event (``_check_seal``), which names what differs.
        """
        if connection.vendor != "postgresql" or self.pending or any(seal.archives for seal in seals):
            return False
        if limits != sorted(limits) or limits[-1] != self.read_to:
            return False
        return _sealed_text(start, limits[-1]) == b"".join(bytes(seal.digests) for seal in seals)
