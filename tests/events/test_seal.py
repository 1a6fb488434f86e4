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
from django.test import Client

from console.events import subscriptions
from console.events.models import Event, Seal
from console.events.pipeline import batch, emit
from console.events.seal import SEALER, Sealer, entries, event_digest, hashed_rows_at, verify
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


def test_verifying_needs_the_permission(client: Client, staff: User) -> None:
    client.force_login(staff)
    assert client.post("/events/sealed/verify/").status_code == 403
    assert not Event.objects.filter(type="log.verified").exists()


def test_verify_now_names_the_tampered_event_and_records_who_checked(
    client: Client, staff_with: Callable[..., User]
) -> None:
    checker = staff_with("events.verify_log")
    events = _sealed_log()
    _sql(f"DELETE FROM {TABLE} WHERE position = %s", [events[4].position])
    client.force_login(checker)
    response = client.post("/events/sealed/verify/", follow=True)
    page = squeezed(response.content.decode())
    assert f"The log was tampered with: event #{events[4].position} was deleted" in page
    assert '<span class="badge failed">tampered</span>' in page and f"by {checker.username}." in page
    recorded = Event.objects.get(type="log.verified")
    assert recorded.actor_id == checker.pk and recorded.data["position"] == events[4].position


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
