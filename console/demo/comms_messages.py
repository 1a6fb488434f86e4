"""The demo's message classes (discovered by the comms app like admin.py modules)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

import structlog

from console.comms.classes import MessageClass, register
from console.comms.models import Message

log = structlog.get_logger("console.demo")


@register
class OrderConfirmation(MessageClass):
    key = "order_confirmation"
    label = "Order confirmation"
    template_dir = "order_confirmation"
    channels = ("email", "sms")
    category = "orders"
    ttl = timedelta(days=2)
    context_fields = ("name", "order_number", "total")
    sample_context: ClassVar[dict[str, object]] = {"name": "Ada", "order_number": "A-1042", "total": "£42.00"}


@register
class PasswordReset(MessageClass):
    key = "password_reset"
    label = "Password reset"
    template_dir = "password_reset"
    channels = ("email",)
    fallback = False
    mandatory = True
    category = "security"
    ttl = timedelta(hours=1)
    context_fields = ("name", "reset_url")
    sample_context: ClassVar[dict[str, object]] = {
        "name": "Ada",
        "reset_url": "https://shop.example.com/reset/3f9c1d/",
    }

    @classmethod
    def on_mandatory_failure(cls, message: Message) -> None:
        # A real site would open a support ticket or lock the reset flow; the demo records that it was asked.
        log.error("demo.password_reset_undeliverable", message_id=message.pk, recipient=message.recipient)


@register
class ShippingUpdate(MessageClass):
    key = "shipping_update"
    label = "Shipping update"
    template_dir = "shipping_update"
    channels = ("push", "sms", "email")
    category = "orders"
    ttl = timedelta(days=1)
    context_fields = ("name", "order_number", "carrier", "tracking_url")
    sample_context: ClassVar[dict[str, object]] = {
        "name": "Ada",
        "order_number": "A-1042",
        "carrier": "Parcelway",
        "tracking_url": "https://track.example.com/PW123",
    }
