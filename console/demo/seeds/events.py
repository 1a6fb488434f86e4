"""Volume for the audit log: tops the event log up to ``--events`` with a realistic mix, in bulk."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from console.demo.seeds import SeedOptions
from console.events.catalog import declare
from console.events.models import Event
from console.events.reader import lock_for_append
from console.events.subscriptions import notify_appended

ORDER = 90
BATCH = 5000
# Spread over the last month, so time-range filters have something to narrow.
SPAN = timedelta(days=30)

ORDER_PLACED = declare(
    "demo.order_placed", description="A customer placed an order.", required={"order", "total", "items"}
)
ORDER_SHIPPED = declare("demo.order_shipped", description="An order left the warehouse.", required={"order", "carrier"})
PAYMENT_FAILED = declare(
    "demo.payment_failed",
    description="A card payment was declined.",
    required={"order", "reason"},
    level="warning",
)
REFUND_ISSUED = declare(
    "demo.refund_issued",
    description="Support refunded an order.",
    required={"order", "amount"},
    optional={"note"},
    audit=True,
)
CARRIERS = ("DHL", "UPS", "Royal Mail", "PostNL")
REASONS = ("insufficient_funds", "card_expired", "do_not_honor", "suspected_fraud")


def _event(rng: random.Random, n: int, when: datetime, actors: list[int | None], request_id: str) -> Event:
    order = f"order-{n // 4:06d}"
    step = n % 4
    if step == 0:
        kind, data = ORDER_PLACED, {"order": order, "total": round(rng.uniform(5, 500), 2), "items": rng.randint(1, 9)}
    elif step == 1 and rng.random() < 0.15:
        kind, data = PAYMENT_FAILED, {"order": order, "reason": rng.choice(REASONS)}
    elif step == 3 and rng.random() < 0.05:
        kind, data = REFUND_ISSUED, {"order": order, "amount": round(rng.uniform(5, 100), 2), "note": "Goodwill"}
    else:
        kind, data = ORDER_SHIPPED, {"order": order, "carrier": rng.choice(CARRIERS)}
    return Event(
        type=kind.name,
        schema_version=kind.schema_version,
        stream_type="order",
        stream_id=order,
        data=data,
        metadata={"request_id": request_id, "correlation_id": request_id, "demo": True},
        actor_id=rng.choice(actors),
        recorded_at=when,
    )


def seed(options: SeedOptions) -> str:
    existing = Event.objects.count()
    missing = options.events - existing
    if missing <= 0:
        return f"the log already holds {existing} events (asked for {options.events})"
    actors: list[int | None] = [
        None,
        *get_user_model()._default_manager.filter(is_staff=True).values_list("pk", flat=True),
    ]
    rng = random.Random(existing)
    now = timezone.now()
    start = now - SPAN
    step = SPAN / missing
    created = 0
    request_id = str(uuid.uuid4())
    while created < missing:
        size = min(BATCH, missing - created)
        rows = []
        for offset in range(size):
            n = existing + created + offset
            if n % 3 == 0:
                request_id = str(uuid.uuid4())
            rows.append(_event(rng, n, start + step * (created + offset), actors, request_id))
        with transaction.atomic():
            lock_for_append()
            Event.objects.bulk_create(rows, batch_size=1000)
            notify_appended()
        created += size
    return f"{created} events appended; the log now holds {existing + created}"
