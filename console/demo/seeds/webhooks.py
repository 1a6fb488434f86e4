"""Webhook endpoints with a history: one healthy with some failures, one that a 410 Gone switched off.

Deliveries and hourly health rows are written directly (bulk), as if sent over the last two days, so every
webhook page has something to show; the endpoints point at hosts under the reserved ``.example`` domain,
which never resolve, so nothing leaves the machine. Endpoints are found again by name: a second run adds
nothing. Like the other seeds' history, the rows are written without events: the log's volume is the
events seed's to set.
"""

from __future__ import annotations

import random
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from console.demo.seeds import SeedOptions
from console.events.models import Event, WebhookDelivery, WebhookEndpoint, WebhookHealth

ORDER = 95
HOURS = 48
DELIVERIES = 60
HEALTHY = "Fulfilment (demo)"
GONE = "Legacy CRM (demo)"


def _history(endpoint: WebhookEndpoint, rng: random.Random, *, failure_rate: float, gone_at: int | None) -> None:
    """Hourly health rows and one delivery per recent event; from hour ``gone_at`` ago on, all fail."""
    now = timezone.now()
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    rows = []
    for back in range(HOURS, 0, -1):
        if gone_at is not None and back < gone_at:
            break
        attempts = rng.randint(5, 40)
        failing = gone_at is not None and back == gone_at
        succeeded = 0 if failing else sum(rng.random() >= failure_rate for _ in range(attempts))
        latencies = [rng.randint(40, 400) for _ in range(attempts)]
        rows.append(
            WebhookHealth(
                endpoint=endpoint,
                hour=this_hour - timedelta(hours=back),
                attempts=attempts,
                succeeded=succeeded,
                total_ms=sum(latencies),
                max_ms=max(latencies),
            )
        )
    WebhookHealth.objects.bulk_create(rows)
    events = list(Event.objects.order_by("-position")[:DELIVERIES])
    deliveries = []
    for index, event in enumerate(reversed(events)):
        when = now - timedelta(hours=HOURS) + timedelta(hours=HOURS) * index / max(len(events), 1)
        gone = gone_at is not None and index == len(events) - 1
        ok = not gone and rng.random() >= failure_rate
        code = 410 if gone else 200 if ok else rng.choice([500, 502, 503])
        deliveries.append(
            WebhookDelivery(
                endpoint=endpoint,
                event=event,
                event_position=event.position,
                event_type=event.type,
                message_id=f"evt_{event.position}",
                status=WebhookDelivery.Status.SUCCEEDED if ok else WebhookDelivery.Status.FAILED,
                attempts=1 if ok or gone else rng.randint(3, 12),
                next_attempt_at=when,
                last_status_code=code,
                last_error="" if ok else f"HTTP {code}",
                last_response="ok" if ok else "Service Unavailable" if code == 503 else "",
                duration_ms=rng.randint(40, 400),
                delivered_at=when if ok else None,
            )
        )
    WebhookDelivery.objects.bulk_create(deliveries)


def seed(options: SeedOptions) -> str:
    if WebhookEndpoint.objects.filter(name__in=[HEALTHY, GONE]).exists():
        return "the demo webhook endpoints exist already"
    actor = get_user_model()._default_manager.filter(is_staff=True).order_by("pk").first()
    if actor is None:
        return "no staff user to create the demo webhook endpoints as"
    rng = random.Random(15)
    now = timezone.now()
    with transaction.atomic():
        healthy = WebhookEndpoint.objects.create(
            name=HEALTHY, url="https://fulfilment.example/hooks/console", created_by=actor
        )
        _history(healthy, rng, failure_rate=0.08, gone_at=None)
        WebhookEndpoint.objects.filter(pk=healthy.pk).update(
            last_success_at=now - timedelta(minutes=20),
            last_error="HTTP 503",
            last_error_at=now - timedelta(hours=3),
        )
        gone = WebhookEndpoint.objects.create(name=GONE, url="https://crm.example/webhooks", created_by=actor)
        _history(gone, rng, failure_rate=0.3, gone_at=6)
        WebhookEndpoint.objects.filter(pk=gone.pk).update(
            active=False,
            disabled_reason="The receiver answered 410 Gone.",
            disabled_at=now - timedelta(hours=6),
            disabled_position=Event.objects.order_by("-position").values_list("position", flat=True).first() or 0,
            failure_streak=1,
            failing_since=now - timedelta(hours=6),
            last_success_at=now - timedelta(hours=7),
            last_error="HTTP 410",
            last_error_at=now - timedelta(hours=6),
        )
    return f"2 webhook endpoints with {WebhookDelivery.objects.count()} deliveries"
