"""django-anymail's tracking signal, when anymail is installed: its normalized events feed ``provider_event``."""

from __future__ import annotations

from typing import Any

from console.comms.reports import provider_event

HANDLED = ("bounced", "rejected", "complained", "deferred", "delivered")

try:
    from anymail.signals import tracking
except ImportError:  # anymail is optional
    tracking = None


def handle_tracking(sender: Any, event: Any, esp_name: str, **kwargs: Any) -> None:
    if event.event_type not in HANDLED:
        return
    metadata = event.metadata or {}
    # Without an event id from the ESP, the provider id, type and timestamp identify a report.
    event_id = event.event_id or f"{event.message_id}:{event.event_type}:{event.timestamp}"
    provider_event(
        source=f"anymail:{esp_name}",
        event_id=str(event_id),
        event_type=event.event_type,
        provider_id=str(event.message_id or ""),
        message_id=metadata.get("console_message_id"),
        delivery_id=metadata.get("console_delivery_id"),
        description=str(event.mta_response or event.description or ""),
        code=str(event.mta_response or "")[:3],
        payload={"recipient": event.recipient, "reject_reason": event.reject_reason},
    )


if tracking is not None:
    tracking.connect(handle_tracking, dispatch_uid="console.comms.anymail_tracking")
