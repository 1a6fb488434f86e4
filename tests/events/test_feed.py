"""The JSON feed: events after a position in commit order, for a token or a staff session."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from console.events.models import Event
from console.events.pipeline import batch, emit
from tests.events.conftest import PING


@pytest.fixture
def token(settings: Any) -> dict[str, str]:
    settings.CONSOLE_EVENTS = {"FEED_TOKEN": "feed-token", "FEED_LIMIT": 3}
    return {"Authorization": "Bearer feed-token"}


@pytest.fixture
def pings(db: None) -> list[Event]:
    with batch():
        stored = [emit(PING, n=n) for n in range(5)]
    return [event for event in stored if event is not None]


def test_it_rejects_missing_and_bad_credentials(client: Client, token: dict[str, str], outsider: User) -> None:
    assert client.get("/events/feed").status_code == 401
    assert client.get("/events/feed", headers={"Authorization": "Bearer wrong"}).status_code == 403
    client.force_login(outsider)
    assert client.get("/events/feed").status_code == 403


def test_it_pages_through_the_log_in_order(client: Client, token: dict[str, str], pings: list[Event]) -> None:
    first = client.get("/events/feed?after=0", headers=token).json()
    assert [e["data"]["n"] for e in first["events"]] == [0, 1, 2]
    assert first["next"] == pings[2].position
    second = client.get(f"/events/feed?after={first['next']}", headers=token).json()
    assert [e["data"]["n"] for e in second["events"]] == [3, 4]
    third = client.get(f"/events/feed?after={second['next']}", headers=token).json()
    assert third == {"events": [], "next": second["next"]}
    assert set(first["events"][0]) >= {"position", "type", "recorded_at", "data", "metadata", "stream_id"}


def test_it_filters_by_type_and_serves_staff(client: Client, staff: User, pings: list[Event]) -> None:
    emit("auth.logged_out", username="x")
    client.force_login(staff)
    body = client.get("/events/feed?type=auth.logged_out").json()
    assert [e["type"] for e in body["events"]] == ["auth.logged_out"]


@pytest.mark.parametrize("query", ["after=abc", "after=-1", "limit=0", "limit=4", "limit=x"])
def test_bad_parameters_are_a_400(client: Client, token: dict[str, str], query: str, db: None) -> None:
    response = client.get(f"/events/feed?{query}", headers=token)
    assert response.status_code == 400 and "error" in response.json()


@pytest.mark.parametrize(
    "query",
    ["after=²", "after=\u0661\u0662", "after=+1", "after=1_0", f"after={2**63}", "limit=²", f"limit={'9' * 5000}"],
)
def test_anything_but_ascii_digits_is_a_400_that_says_so(
    client: Client, token: dict[str, str], query: str, db: None
) -> None:
    response = client.get(f"/events/feed?{query}", headers=token)
    assert response.status_code == 400
    assert response.json() == {"error": "after and limit must be whole numbers (ASCII digits)"}


def test_a_nul_in_a_type_is_a_400(client: Client, token: dict[str, str], db: None) -> None:
    response = client.get("/events/feed?type=a%00b", headers=token)
    assert response.status_code == 400
    assert response.json() == {"error": "type must not contain NUL characters"}
