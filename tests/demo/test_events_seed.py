"""The demo's event volume: ``console_demo --events N`` reaches N events, and a second run adds nothing."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from console.events.models import Event


def test_it_tops_the_log_up_to_the_asked_volume_once(db: None, capsys: pytest.CaptureFixture[str]) -> None:
    call_command("console_demo", "--events", "1200", "--messages", "0")
    assert Event.objects.count() == 1200
    assert Event.objects.filter(type="demo.order_placed").exists()
    assert Event.objects.filter(type="demo.order_shipped", stream_id__startswith="order-").exists()
    demo = Event.objects.filter(type__startswith="demo.")
    first, newest = demo.order_by("position").first(), demo.order_by("-position").first()
    assert first is not None and newest is not None and first.recorded_at < newest.recorded_at
    call_command("console_demo", "--events", "1200", "--messages", "0")
    assert Event.objects.count() == 1200
    assert "already holds" in capsys.readouterr().out
