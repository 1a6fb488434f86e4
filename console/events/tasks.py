"""Tasks of the events app: thin shims over the worker code."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.events.context import restored
from console.events.subscriptions import catch_up_all
from console.events.webhook_sender import deliver_due


@task()
def catch_up_subscriptions() -> dict[str, int]:
    """Let every subscriber handle what was appended; enqueued after each commit that appends events."""
    return catch_up_all()


@task()
def deliver_webhooks(context: dict[str, Any] | None = None) -> dict[str, int]:
    """Send the webhook deliveries that are due."""
    with restored(context):
        return deliver_due()
