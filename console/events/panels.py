"""The dashboard's event log panel: what holds readers back, and how far behind each subscriber is."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest

from console.events.models import Checkpoint, Event
from console.events.reader import oldest_open_transaction


def event_log_panel(request: HttpRequest) -> dict[str, Any]:
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    return {
        "vendor": connection.vendor,
        "newest": newest,
        "oldest": oldest_open_transaction(),
        "checkpoints": [(checkpoint, max(newest - checkpoint.position, 0)) for checkpoint in Checkpoint.objects.all()],
    }
