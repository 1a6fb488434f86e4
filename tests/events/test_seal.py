"""The sealed log: tampering by raw SQL (edit, delete, insert) is named by ``events verify``; lag is not."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from console.core.models import Operation
from console.core.operations import run_operation
from console.events import subscriptions
from console.events.models import Event, Seal
from console.events.pipeline import batch, emit
from console.events.seal import SEALER, Sealer, entries, event_digest, hashed_rows_at, verify
from console.events.seal_check import KIND
from console.events.services import log_verify_start
from tests.conftest import squeezed
from tests.events.conftest import PING, seal_all

TABLE = Event._meta.db_table


@pytest.fixture(autouse=True)
def sealer(no_subscribers: None) -> Sealer:
    subscriptions.register(Sealer())
    return Sealer()


def _sealed_log(transactions: int = 3, per_transaction: int = 4) -> list[Event]:
    events: list[Event] = []
    for t in range(transactions):
        with batch():
            stored = [emit(PING, n=t * 100 + n, note="é ünïcode") for n in range(per_transaction)]
        events.extend(event for event in stored if event is not None)
    seal_all()
    return events


def _sql(sql: str, params: list[Any]) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _insert(position: int, tx: int | None) -> None:
    _sql(
        f"INSERT INTO {TABLE} (position, stream_type, stream_id, version, type, schema_version, data, metadata, tx) "
        "VALUES (%s, '', '', NULL, 'test.ping', 1, %s, '{}', %s)",
        [position, '{"n": 7}', tx],
    )


def test_an_untouched_log_verifies_with_every_event_checked(db: None) -> None:
    events = _sealed_log()
    result = verify()
    assert result.ok, result.problems
    assert result.checked == len(events) and result.unsealed == 0
    assert result.seals == Seal.objects.count() == 1
    assert result.head == Seal.objects.get().hash


def test_each_batch_seals_onto_the_previous_seal(db: None) -> None:
    _sealed_log(transactions=1)
    _sealed_log(transactions=1)
    first, second = Seal.objects.order_by("pk")
    assert second.previous_hash == first.hash
    assert verify().ok


def test_changing_one_events_data_names_it(db: None) -> None:
    events = _sealed_log()
    target = events[5]
    _sql(f"UPDATE {TABLE} SET data = %s WHERE position = %s", ['{"n": 999}', target.position])
    result = verify()
    assert not result.ok
    assert [(p.kind, p.position) for p in result.problems] == [("changed", target.position)]
    assert f"event #{target.position} was changed" in result.summary()


def test_changing_when_an_event_was_recorded_names_it(db: None) -> None:
    events = _sealed_log()
    _sql(f"UPDATE {TABLE} SET recorded_at = %s WHERE position = %s", ["2001-01-01 00:00:00", events[0].position])
    assert [(p.kind, p.position) for p in verify().problems] == [("changed", events[0].position)]


def test_deleting_one_event_names_it(db: None) -> None:
    events = _sealed_log()
    target = events[7]
    _sql(f"DELETE FROM {TABLE} WHERE position = %s", [target.position])
    assert [(p.kind, p.position) for p in verify().problems] == [("deleted", target.position)]


def test_inserting_one_event_into_a_sealed_range_names_it(db: None) -> None:
    with batch():
        events = [emit(PING, n=n) for n in range(3)]
    gap = events[1]
    assert gap is not None
    # A position that never committed (deleted before sealing here), filled in by hand afterwards with the
    # neighbour's transaction id, as a careful forger would on PostgreSQL.
    _sql(f"DELETE FROM {TABLE} WHERE position = %s", [gap.position])
    seal_all()
    assert verify().ok
    _insert(gap.position, gap.tx)
    assert [(p.kind, p.position) for p in verify().problems] == [("inserted", gap.position)]


def test_the_first_of_several_problems_is_named_first(db: None) -> None:
    events = _sealed_log()
    _sql(f"DELETE FROM {TABLE} WHERE position = %s", [events[9].position])
    _sql(f"UPDATE {TABLE} SET metadata = %s WHERE position = %s", ['{"ip": "1.2.3.4"}', events[2].position])
    problems = verify().problems
    expected = [("changed", events[2].position), ("deleted", events[9].position)]
    assert [(p.kind, p.position) for p in problems] == expected


def test_editing_a_seal_breaks_the_chain(db: None) -> None:
    _sealed_log(transactions=1)
    _sealed_log(transactions=1)
    first = Seal.objects.order_by("pk").first()
    assert first is not None
    _sql("UPDATE events_seal SET hash = %s WHERE id = %s", ["f" * 64, first.pk])
    assert [p.kind for p in verify().problems] == ["seal"]


def test_a_sealer_that_is_behind_reports_what_is_not_sealed_yet_not_a_problem(db: None) -> None:
    _sealed_log()
    subscriptions.pause(SEALER)
    with batch():
        for n in range(5):
            emit(PING, n=n)
    result = verify()
    assert result.ok
    assert result.unsealed == 5
    assert "5 newer events not sealed yet" in result.summary()


def test_an_empty_log_verifies(db: None) -> None:
    result = verify()
    assert result.ok and result.seals == 0 and result.checked == 0


def test_the_command_exits_with_the_first_problem_and_records_who_checked(db: None, operator: User) -> None:
    events = _sealed_log()
    out = StringIO()
    call_command("events", "verify", stdout=out)
    assert "The log is intact: 12 events in 1 seals checked." in out.getvalue()
    _sql(f"UPDATE {TABLE} SET data = %s WHERE position = %s", ['{"n": -1}', events[3].position])
    with pytest.raises(CommandError, match=f"event #{events[3].position} was changed"):
        call_command("events", "verify", stdout=StringIO())
    recorded = Event.objects.filter(type="log.verified").order_by("position")
    assert [e.data["ok"] for e in recorded] == [True, False]
    assert recorded.last() is not None and recorded.last().data["position"] == events[3].position  # type: ignore[union-attr]


# --- the console page ----------------------------------------------------------------------------------------------


def test_the_page_shows_the_chain_and_what_is_not_sealed_yet(client: Client, staff: User) -> None:
    _sealed_log()
    subscriptions.pause(SEALER)
    emit(PING, n=1)
    client.force_login(staff)
    page = squeezed(client.get("/events/sealed/").content.decode())
    head = Seal.objects.get()
    assert '<dd data-testid="seal-count">1</dd>' in page
    assert f'<code class="hash">{head.hash}</code>' in page
    # The ping and the sign-in.
    assert '<dd data-testid="unsealed"> 2 events (the sealer is paused) </dd>' in page
    assert "The log has not been checked yet." in page
    assert "Verify now" not in page  # staff without the permission


def test_verifying_needs_the_permission(client: Client, staff: User, operator: User) -> None:
    client.force_login(staff)
    assert client.post("/events/sealed/verify/").status_code == 403
    assert not Operation.objects.exists()
    # Nor may they watch or cancel someone else's check.
    checking = log_verify_start(actor=operator)
    assert client.get(f"/operations/{checking.pk}/").status_code == 403
    assert client.post(f"/operations/{checking.pk}/cancel").status_code == 403
    checking.refresh_from_db()
    assert checking.cancel_requested_at is None and checking.state == "queued"
    assert not Event.objects.filter(type__in=["log.verified", "log.verify_cancelled"]).exists()


def _three_seals(*, gap: bool = False) -> tuple[list[Event], Event]:
    """Three seals of four events each; with ``gap`` the middle one's first position never committed."""
    events: list[Event] = []
    for t in range(3):
        with batch():
            stored = [emit(PING, n=t * 10 + n) for n in range(4)]
        events.extend(event for event in stored if event is not None)
        if gap and t == 1:
            _sql(f"DELETE FROM {TABLE} WHERE position = %s", [events[4].position])
        seal_all()
    return events, events[4]


def _tampered(kind: str) -> int:
    """A sealed log tampered with by raw SQL as ``kind`` says; the position a check should name."""
    events, gap = _three_seals(gap=kind == "inserted")
    assert Seal.objects.count() == 3 and verify().ok
    if kind == "changed":
        _sql(f"UPDATE {TABLE} SET data = %s WHERE position = %s", ['{"n": -5}', events[6].position])
        return events[6].position
    if kind == "deleted":
        _sql(f"DELETE FROM {TABLE} WHERE position = %s", [events[9].position])
        return events[9].position
    # A position that never committed, filled in by hand with its neighbour's transaction id.
    _insert(gap.position, gap.tx)
    return gap.position


@pytest.mark.parametrize("kind", ["changed", "deleted", "inserted"])
def test_verify_now_is_a_background_check_that_names_what_the_command_names(
    kind: str,
    client: Client,
    staff_with: Callable[..., User],
    immediate: None,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    # Chunks of one seal each: the tampered event is in a later chunk than the first.
    monkeypatch.setattr("console.events.seal.CHUNK", 4)
    checker = staff_with("events.verify_log")
    position = _tampered(kind)
    with pytest.raises(CommandError, match=f"event #{position} was {kind}"):
        call_command("events", "verify", stdout=StringIO())
    client.force_login(checker)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/events/sealed/verify/")
    operation = Operation.objects.get(kind=KIND)
    assert response.status_code == 302 and response["Location"] == f"/operations/{operation.pk}/"
    assert operation.state == "succeeded" and operation.requested_by == checker
    assert operation.total == operation.done == Seal.objects.aggregate(total=Sum("count"))["total"]
    result = operation.progress["result"]
    assert (result["ok"], result["position"], result["problems"]) == (False, position, 1)
    assert result["listed"][0].startswith(f"event #{position} was {kind}")
    assert f"The log was tampered with: event #{position} was {kind}" in operation.progress["outcome"]
    head = Seal.objects.order_by("-pk").first()
    assert head is not None and result["head"] == head.hash
    started = Event.objects.get(type="log.verify_started")
    assert started.actor == checker and started.data == {"operation_id": operation.pk}
    from_console = Event.objects.get(type="log.verified", actor=checker)
    assert from_console.data["operation_id"] == operation.pk and from_console.data["position"] == position
    # The operation's page says what was found; the sealed log's page shows the latest check and who asked.
    assert f"event #{position} was {kind}" in client.get(f"/operations/{operation.pk}/").content.decode()
    page = squeezed(client.get("/events/sealed/").content.decode())
    assert '<span class="badge failed">tampered</span>' in page and f"by {checker.username}." in page
    assert f'<code class="hash" data-testid="checked-head">{head.hash}</code>' in page


def test_an_intact_log_checked_from_the_console_says_so(
    client: Client,
    operator: User,
    immediate: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    _three_seals()
    client.force_login(operator)
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/events/sealed/verify/")
    operation = Operation.objects.get(kind=KIND)
    assert operation.progress["result"]["ok"] is True and operation.progress["result"]["listed"] == []
    assert operation.progress["outcome"].startswith("The log is intact: 12 events in 3 seals checked")
    page = squeezed(client.get("/events/sealed/").content.decode())
    assert '<span class="badge succeeded">intact</span>' in page and "by operator." in page


def test_a_check_asked_twice_while_it_runs_is_one_check(client: Client, operator: User) -> None:
    _three_seals()
    client.force_login(operator)
    first = client.post("/events/sealed/verify/")
    again = client.post("/events/sealed/verify/")
    assert first["Location"] == again["Location"] and Operation.objects.count() == 1
    page = squeezed(client.get("/events/sealed/").content.decode())
    assert 'data-state="queued"' in page and "Verify the sealed log" in page


def test_a_cancel_stops_the_check_between_chunks(operator: User, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("console.events.seal.CHUNK", 4)
    _three_seals()
    operation = log_verify_start(actor=operator)
    real_advance = Operation.advance
    chunks: list[int] = []

    def advance_then_cancel(self: Operation, count: int = 1, **progress: Any) -> None:
        real_advance(self, count, **progress)
        chunks.append(count)
        if count:  # someone presses Cancel once the first chunk is checked
            Operation.objects.filter(pk=self.pk).update(cancel_requested_at=timezone.now())

    monkeypatch.setattr(Operation, "advance", advance_then_cancel)
    assert run_operation(operation.pk) == "cancelled"
    operation.refresh_from_db()
    assert chunks == [0, 4] and (operation.done, operation.total) == (4, 12)
    assert "result" not in operation.progress
    assert not Event.objects.filter(type="log.verified").exists()


def test_cancelling_a_queued_check_records_who(client: Client, operator: User) -> None:
    _three_seals()
    client.force_login(operator)
    client.post("/events/sealed/verify/")
    operation = Operation.objects.get(kind=KIND)
    assert client.post(f"/operations/{operation.pk}/cancel").status_code == 302
    operation.refresh_from_db()
    assert operation.state == "cancelled" and run_operation(operation.pk) == "not queued"
    cancelled = Event.objects.get(type="log.verify_cancelled")
    assert cancelled.actor == operator and cancelled.data == {"operation_id": operation.pk, "done": 0}


def test_chunks_of_several_seals_verify_as_one_pass_does(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(5):
        _sealed_log(transactions=1, per_transaction=3)
    whole = verify()
    monkeypatch.setattr("console.events.seal.CHUNK", 7)  # three seals, then two
    reports: list[tuple[int, int]] = []
    chunked = verify(after_chunk=lambda events, total: reports.append((events, total)))
    assert chunked.ok and (chunked.checked, chunked.seals, chunked.head) == (whole.checked, whole.seals, whole.head)
    assert reports == [(0, 15), (9, 15), (6, 15)]


def test_the_sealer_going_on_while_a_check_runs_is_no_problem(db: None) -> None:
    _sealed_log(transactions=2)

    def seal_more(events: int, total: int) -> None:
        if events == 0:  # after the check has read the head seal, before it reads the checkpoint
            _sealed_log(transactions=1)

    result = verify(after_chunk=seal_more)
    assert result.ok, result.problems
    assert result.checked == 8 and Seal.objects.count() == 2


def test_seals_removed_behind_the_sealer_are_named(db: None) -> None:
    _sealed_log(transactions=1)
    _sealed_log(transactions=1)
    first, second = Seal.objects.order_by("pk")
    second.delete()
    problems = [(p.kind, p.text) for p in verify().problems]
    assert ("seal", f"the sealer read past #{first.last_position} but the seals after it are missing") in problems


def test_a_problem_in_a_later_chunk_is_named(db: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("console.events.seal.CHUNK", 7)
    events = [event for _ in range(5) for event in _sealed_log(transactions=1, per_transaction=3)]
    _sql(f"DELETE FROM {TABLE} WHERE position = %s", [events[13].position])
    _sql(f"UPDATE {TABLE} SET type = %s WHERE position = %s", ["test.forged", events[10].position])
    problems = [(p.kind, p.position) for p in verify().problems]
    assert problems == [("changed", events[10].position), ("deleted", events[13].position)]


def test_an_event_is_hashed_as_a_compact_json_array_of_its_columns() -> None:
    row = (5, "t.x", "order", 'id "é"\n', None, 1, "2026-01-01T00:00:00.000000Z", '{"a": "é"}', "{}", 9)
    text = json.dumps(row[:9], separators=(",", ":"), ensure_ascii=False)
    assert event_digest(row) == hashlib.sha256(text.encode()).digest()


def test_the_database_and_python_hash_awkward_text_alike(db: None) -> None:
    awkward = 'tab\t quote" back\\ bell\x07 del\x7f é 😀 </script>'
    event = emit(PING, n=1, note=awkward, stream_type='o"rder', stream_id=awkward)
    assert event is not None
    seal_all()
    row = hashed_rows_at([event.position])[0]
    sealed = dict(entries(bytes(Seal.objects.get().digests)))
    assert sealed[event.position] == event_digest(row)
    assert verify().ok
