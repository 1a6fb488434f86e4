"""Provider reports (delivered, bounced, rejected, complained, deferred), applied once each, in order.

Reports arrive from the signed inbound endpoint and from django-anymail's tracking signal. Each is stored
once (a duplicate changes nothing) and matched to our delivery by the ids we gave the provider.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from console.comms import declarations
from console.comms.delivery import fail, mark_defunct
from console.comms.models import Attempt, Delivery, FailureClass, Message, ProviderEvent, Status, as_json
from console.comms.outcomes import POLICY, RECIPIENT, TEMPORARY, Outcome, classify_smtp
from console.core.inputs import whole_number
from console.events import emit

# Later states never go back to earlier ones when reports arrive out of order.
_RANK = {Status.SENT: 1, Status.DEFERRED: 1, Status.DELIVERED: 2, Status.FAILED: 3}


def provider_event(
    *,
    source: str,
    event_id: str,
    event_type: str,
    provider_id: str = "",
    message_id: int | str | None = None,
    delivery_id: int | str | None = None,
    description: str = "",
    code: str = "",
    payload: dict[str, Any] | None = None,
) -> str:
    """Apply one provider report (delivered, bounced, rejected, complained, deferred) exactly once."""
    delivery = _find_delivery(provider_id=provider_id, message_id=message_id, delivery_id=delivery_id)
    with transaction.atomic():
        try:
            with transaction.atomic():
                ProviderEvent.objects.create(
                    source=source,
                    event_id=event_id[:200],
                    event_type=event_type[:30],
                    delivery=delivery,
                    payload=as_json(payload or {}),
                )
        except IntegrityError:
            return "duplicate"
        if delivery is None:
            return "unmatched"
        delivery = Delivery.objects.select_for_update().select_related("message").get(pk=delivery.pk)
        if event_type == "delivered":
            if _RANK.get(Status(delivery.status), 0) >= _RANK[Status.DELIVERED]:
                return "stale"
            now = timezone.now()
            Delivery.objects.filter(pk=delivery.pk).update(status=Status.DELIVERED, delivered_at=now)
            Message.objects.filter(pk=delivery.message_id, status=Status.SENT).update(status=Status.DELIVERED)
            emit(
                declarations.MESSAGE_DELIVERED,
                **Message.stream_of(delivery.message_id),
                message_id=delivery.message_id,
                message_type=delivery.message.message_type,
                channel=delivery.channel,
                source=source,
            )
            return "delivered"
        if event_type in ("bounced", "rejected", "complained"):
            if delivery.status == Status.FAILED:
                return "stale"
            smtp_code = whole_number(code[:3])
            outcome = (
                classify_smtp(smtp_code, description)
                if smtp_code is not None
                else Outcome(RECIPIENT, error=description or event_type)
            )
            if event_type == "complained":
                outcome = Outcome(RECIPIENT, error=f"complaint: {description}".strip())
            Attempt.objects.create(
                delivery=delivery,
                channel=delivery.channel,
                address=delivery.address,
                outcome=outcome.kind,
                code=outcome.code,
                enhanced_code=outcome.enhanced_code,
                error=f"{source} reported {event_type}: {description}"[:1000],
            )
            if outcome.kind == RECIPIENT:
                mark_defunct(delivery, outcome, timezone.now())
                failure = FailureClass.COMPLAINED if event_type == "complained" else FailureClass.RECIPIENT
            elif outcome.kind == POLICY:
                failure = FailureClass.POLICY
            elif outcome.kind == TEMPORARY:
                failure = FailureClass.TEMPORARY
            else:
                failure = FailureClass.INFRASTRUCTURE
            fail(delivery, failure, outcome, reason=f"{source} reported {event_type}: {description}")
            return event_type
        if event_type == "deferred":
            Attempt.objects.create(
                delivery=delivery,
                channel=delivery.channel,
                address=delivery.address,
                outcome=TEMPORARY,
                error=f"{source} reported deferred: {description}"[:1000],
            )
            return "deferred"
    return "ignored"


def _as_pk(value: int | str | None) -> int | None:
    return whole_number(str(value)) if value is not None else None


def _find_delivery(*, provider_id: str, message_id: int | str | None, delivery_id: int | str | None) -> Delivery | None:
    delivery_pk, message_pk = _as_pk(delivery_id), _as_pk(message_id)
    if delivery_pk is not None:
        found = Delivery.objects.filter(pk=delivery_pk).first()
        if found is not None:
            return found
    if provider_id:
        found = Delivery.objects.filter(provider_id=provider_id).order_by("-pk").first()
        if found is not None:
            return found
    if message_pk is not None:
        return (
            Delivery.objects.filter(message_id=message_pk, status__in=(Status.SENT, Status.DELIVERED))
            .order_by("-pk")
            .first()
        )
    return None
