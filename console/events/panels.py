"""The dashboard's event log panel (what holds readers back, how far behind each subscriber is), and the banner
that tells staff on every page about webhook endpoints the sender switched off."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.http import HttpRequest

from console.events.models import Checkpoint, Event, WebhookEndpoint
from console.events.reader import oldest_open_transaction


def event_log_panel(request: HttpRequest) -> dict[str, Any]:
    newest = Event.objects.order_by("-position").values_list("position", flat=True).first() or 0
    return {
        "vendor": connection.vendor,
        "newest": newest,
        "oldest": oldest_open_transaction(),
        "checkpoints": [(checkpoint, max(newest - checkpoint.position, 0)) for checkpoint in Checkpoint.objects.all()],
    }


def disabled_banner(request: HttpRequest) -> list[str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return []
    names = list(
        WebhookEndpoint.objects.filter(active=False, disabled_at__isnull=False).values_list("name", flat=True)[:5]
    )
    if not names:
        return []
    listed = ", ".join(f"“{name}”" for name in names)
    return [f"Webhook endpoint(s) {listed} were disabled after failing: see Webhooks to re-enable them."]
