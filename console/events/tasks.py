"""Tasks of the events app, dispatched through django.tasks."""

from __future__ import annotations

from django.tasks import task

from console.events.subscriptions import catch_up_all


@task()
def catch_up_subscriptions() -> dict[str, int]:
    """Let every subscriber handle what was appended; enqueued after each commit that appends events."""
    return catch_up_all()


@task()
def deliver_webhooks() -> dict[str, int]:
    """Send the webhook deliveries that are due."""
    from console.events.webhooks import deliver_due

    return deliver_due()
