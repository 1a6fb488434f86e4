"""Send demo messages through the real outbox, so a running worker has live traffic to deliver."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from console.comms.classes import lookup
from console.comms.sending import Recipient, send

TYPES = ("order_confirmation", "password_reset", "shipping_update")


class Command(BaseCommand):
    help = "Queue demo messages (order confirmations, password resets, shipping updates) for the worker to send."
    # It mails the demo's customers.
    console_job_class = "changes-data"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--count", type=int, default=10, help="How many messages to queue (1-10000).")
        parser.add_argument("--type", choices=[*TYPES, "mixed"], default="mixed", help="Which message class to send.")

    def handle(self, *args: Any, count: int, type: str, **options: Any) -> None:
        if not 1 <= count <= 10_000:
            raise CommandError("--count must be between 1 and 10000")
        run = uuid.uuid4().hex[:8]
        with transaction.atomic():
            for n in range(count):
                key = TYPES[n % len(TYPES)] if type == "mixed" else type
                cls = lookup(key)
                if cls is None:
                    raise CommandError(f"message class {key!r} is not registered")
                recipient = Recipient(
                    f"demo-{n % 50}",
                    email=f"customer{n % 50}@example.com",
                    phone=f"+4477009{n % 50:05d}",
                    push_token=f"push-demo-{n % 50}",
                )
                send(cls.sample(), to=recipient, idempotency_key=f"demo-send-{run}-{n}")
        self.stdout.write(f"{count} message(s) queued; watch them on /messages/")
