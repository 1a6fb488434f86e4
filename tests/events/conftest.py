"""Event types and helpers the events tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.conf import settings

from console.events import subscriptions
from console.events.catalog import declare

PING = declare("test.ping", description="A test event.", required={"n"}, optional={"note"})
SEEN = declare("test.seen", description="A subscriber saw a ping.", required={"n"})

postgres_only = pytest.mark.skipif(
    settings.DATABASE_VENDOR != "postgresql",
    reason="concurrent transactions committing out of order need PostgreSQL; SQLite serializes every writer",
)


@pytest.fixture
def no_subscribers() -> Iterator[None]:
    """Only the subscribers a test registers itself."""
    saved = dict(subscriptions._subscribers)
    subscriptions._subscribers.clear()
    yield
    subscriptions._subscribers.clear()
    subscriptions._subscribers.update(saved)
