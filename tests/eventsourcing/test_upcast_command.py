"""The upcaster dry run reports what would fail and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from console.events.models import Event
from tests.eventsourcing.conftest import open_account


def _old_opened(stream_id: str, data: dict[str, Any]) -> Event:
    return Event.objects.create(
        stream_type="account", stream_id=stream_id, version=1, type="account.opened", schema_version=1, data=data
    )


def test_it_reports_upcast_and_failing_events_without_writing(db: None, capsys: Any) -> None:
    open_account("acc-new")
    _old_opened("acc-old", {"owner": "Grace"})
    broken = _old_opened("acc-broken", {"name": "no owner field"})
    before = list(Event.objects.order_by("position").values_list("position", "schema_version", "data"))
    with pytest.raises(CommandError, match=r"1 stored account\.opened event"):
        call_command("upcast_dry_run", "account.opened")
    out = capsys.readouterr().out
    assert "account.opened (schema v2): 3 checked, 1 upcast from older versions, 1 failed" in out
    assert f"#{broken.position} v1:" in out
    assert list(Event.objects.order_by("position").values_list("position", "schema_version", "data")) == before


def test_it_passes_when_every_event_converts(db: None, capsys: Any) -> None:
    _old_opened("acc-old", {"owner": "Grace"})
    call_command("upcast_dry_run", "account.opened")
    assert "1 checked, 1 upcast from older versions, 0 failed" in capsys.readouterr().out


def test_an_unknown_type_is_a_clear_error(db: None) -> None:
    with pytest.raises(CommandError, match="no code registers it"):
        call_command("upcast_dry_run", "account.renamed")
