"""The events app's write functions: webhook endpoints, resending a delivery, pausing a subscriber.

Each changes rows inside ``transaction.atomic()`` and emits the event naming the actor; sending happens in
the webhook task, enqueued after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction

from console.events import seal, subscriptions
from console.events.declarations import (
    LOG_VERIFIED,
    SUBSCRIPTION_PAUSED,
    SUBSCRIPTION_RESUMED,
    WEBHOOK_CREATED,
    WEBHOOK_DELIVERY_RESENT,
    WEBHOOK_UPDATED,
)
from console.events.models import Checkpoint, WebhookDelivery, WebhookEndpoint
from console.events.pipeline import emit
from console.events.webhook_sender import dispatch_on_commit

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser


def webhook_create(
    *, actor: AbstractBaseUser, name: str, url: str, event_types: list[str], active: bool = True
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            name=name, url=url, event_types=sorted(event_types), active=active, created_by_id=actor.pk
        )
        emit(
            WEBHOOK_CREATED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            name=name,
            url=url,
            event_types=endpoint.event_types,
        )
    return endpoint


def webhook_update(
    *, actor: AbstractBaseUser, endpoint: WebhookEndpoint, name: str, url: str, event_types: list[str], active: bool
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        changed = sorted(
            key
            for key, value in (("name", name), ("url", url), ("event_types", sorted(event_types)), ("active", active))
            if getattr(endpoint, key) != value
        )
        endpoint.name, endpoint.url, endpoint.event_types = name, url, sorted(event_types)
        if active and not endpoint.active:
            endpoint.disabled_reason = ""
            endpoint.failure_streak = 0
        endpoint.active = active
        endpoint.save()
        emit(
            WEBHOOK_UPDATED,
            actor=actor,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            changed=changed,
        )
    return endpoint


def delivery_resend(*, actor: AbstractBaseUser, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue the same event to the same endpoint again, as a new delivery with the same message id."""
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event=delivery.event,
            event_position=delivery.event_position,
            event_type=delivery.event_type,
            message_id=delivery.message_id,
        )
        emit(
            WEBHOOK_DELIVERY_RESENT,
            actor=actor,
            **WebhookEndpoint.stream_of(delivery.endpoint_id),
            endpoint_id=delivery.endpoint_id,
            delivery_id=again.pk,
            resent_from=delivery.pk,
            position=delivery.event_position,
        )
        dispatch_on_commit()
    return again


def subscription_pause(*, actor: AbstractBaseUser, name: str) -> Checkpoint:
    """Pause subscriber ``name`` (console action): recorded in the log with the actor."""
    subscriptions.get(name)
    with transaction.atomic():
        subscriptions.pause(name)
        checkpoint = Checkpoint.objects.get(name=name)
        emit(SUBSCRIPTION_PAUSED, actor=actor, name=name, position=checkpoint.position)
    return checkpoint


def subscription_resume(*, actor: AbstractBaseUser, name: str) -> Checkpoint:
    """Resume subscriber ``name`` and let it catch up after commit."""
    subscriptions.get(name)
    with transaction.atomic():
        subscriptions.resume(name)
        checkpoint = Checkpoint.objects.get(name=name)
        emit(SUBSCRIPTION_RESUMED, actor=actor, name=name, position=checkpoint.position)
        transaction.on_commit(subscriptions.dispatch)
    return checkpoint


def log_verify(*, actor: AbstractBaseUser | None) -> seal.Verification:
    """Check the log against its seals and record who asked and what was found (a finding is a warning)."""
    result = seal.verify()
    emit(LOG_VERIFIED, actor=actor, **result.as_data())
    return result
