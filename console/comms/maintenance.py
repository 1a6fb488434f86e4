"""The comms app's periodic duties: nothing committed is left unsent, nothing claimed is left hanging."""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from console.comms import sending
from console.comms.conf import comms_settings
from console.comms.delivery import record_sent
from console.comms.models import Delivery, FailureClass, Status
from console.comms.outcomes import SENT


def reconcile() -> str:
    """Re-dispatch deliveries committed but never picked up, and release claims of workers that died."""
    conf = comms_settings()
    now = timezone.now()
    stale_claims = Delivery.objects.filter(
        status=Status.SENDING, claimed_at__lt=now - timedelta(seconds=conf.sending_lease_seconds)
    )
    released = stale_claims.update(status=Status.QUEUED, claim_token="", next_attempt_at=now)
    stuck = list(
        Delivery.objects.filter(
            status=Status.QUEUED, next_attempt_at__lte=now - timedelta(seconds=conf.reconcile_after_seconds)
        ).values_list("pk", flat=True)[:5000]
    )
    if released:
        stuck.extend(
            Delivery.objects.filter(status=Status.QUEUED, next_attempt_at=now).values_list("pk", flat=True)[:5000]
        )
    ids = sorted(set(stuck))
    sending.dispatch(ids)
    # Sent by a worker that died before writing the attempt, the message status and the event.
    unrecorded = list(
        Delivery.objects.filter(
            status=Status.SENT,
            message__status=Status.SENDING,
            sent_at__lt=now - timedelta(seconds=conf.reconcile_after_seconds),
        )
        .exclude(attempt_set__outcome=SENT)
        .select_related("message")[:5000]
    )
    record_sent(unrecorded)
    summary = f"{len(ids)} re-dispatched, {released} stale claim(s) released"
    return summary + (f", {len(unrecorded)} sent delivery(ies) recorded" if unrecorded else "")


def retry_due() -> str:
    """Dispatch deferred deliveries whose retry time has come (backends without deferred tasks need this)."""
    ids = list(
        Delivery.objects.filter(status=Status.DEFERRED, next_attempt_at__lte=timezone.now()).values_list(
            "pk", flat=True
        )[:5000]
    )
    sending.dispatch(ids)
    return f"{len(ids)} retry(ies) dispatched"


def expire() -> str:
    """Stop deliveries of messages past their expiry; the message fails as expired (mandatory ones alert)."""
    now = timezone.now()
    expired = list(
        Delivery.objects.filter(status__in=(Status.QUEUED, Status.DEFERRED), message__expires_at__lte=now)
        .select_related("message")
        .order_by("pk")[:1000]
    )
    for delivery in expired:
        with transaction.atomic():
            changed = Delivery.objects.filter(pk=delivery.pk, status__in=(Status.QUEUED, Status.DEFERRED)).update(
                status=Status.SKIPPED, failure_class=FailureClass.EXPIRED, reason="expired before it could be sent"
            )
            if changed:
                sending.finish(delivery.message, Status.FAILED, FailureClass.EXPIRED)
    return f"{len(expired)} expired"
