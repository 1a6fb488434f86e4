"""Outbox, deliveries, attempts, contact points and preferences.

A ``Message`` is what the application asked to send, rendered once at ``send()``. Each channel tried for it
is a ``Delivery`` (the first one written with the message, the next one when a fallback is taken); each try
of a delivery is an ``Attempt``. Deliveries are claimed by workers with a conditional update, so a row is
sent by one worker even when the queue hands the same id to two.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from console.events.records import StreamRef


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    SMS = "sms", "SMS"
    PUSH = "push", "Push"


class Status(models.TextChoices):
    PENDING = "pending", "Pending"
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    DEFERRED = "deferred", "Deferred (retrying)"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (Status.PENDING, Status.QUEUED, Status.SENDING, Status.DEFERRED)
DONE_OK = (Status.SENT, Status.DELIVERED)


class FailureClass(models.TextChoices):
    TEMPORARY = "temporary", "Temporary (retries exhausted)"
    RECIPIENT = "recipient", "Permanent: recipient"
    POLICY = "policy", "Policy rejection"
    INFRASTRUCTURE = "infrastructure", "Permanent: infrastructure"
    EXPIRED = "expired", "Expired"
    NO_CONTACT = "no_contact", "No usable contact"
    PREFERENCE = "preference", "Opted out"
    COMPLAINED = "complained", "Complaint"


class ContactState(models.TextChoices):
    ACTIVE = "active", "Active"
    SOFT_FAILING = "soft_failing", "Soft-failing"
    DEFUNCT = "defunct", "Defunct"


class ContactPointQuerySet(models.QuerySet["ContactPoint"]):
    def at(self, channel: str, address: str) -> ContactPointQuerySet:
        return self.filter(channel=channel, address=address)

    def clear_soft_failures(self) -> int:
        """The address took a message: forget its temporary failures (a defunct one stays defunct)."""
        return self.exclude(state=ContactState.DEFUNCT).update(soft_failures=0, state=ContactState.ACTIVE)


class ContactPoint(models.Model):
    """An address we send to, and what we learned about it from providers."""

    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254)
    state = models.CharField(max_length=15, choices=ContactState.choices, default=ContactState.ACTIVE)
    reason = models.CharField(max_length=200, blank=True, default="")
    evidence = models.JSONField(default=dict, blank=True)
    soft_failures = models.PositiveIntegerField(default=0)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactPointQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["channel", "address"], name="comms_contact_unique")]
        indexes = [models.Index(fields=["state", "-updated_at"], name="comms_contact_state")]
        permissions = [("reactivate_contactpoint", "Can reactivate a defunct contact point")]

    def __str__(self) -> str:
        return f"{self.channel}:{self.address}"

    @staticmethod
    def stream_of(pk: int) -> StreamRef:
        """The log stream of a contact point's events, as ``emit()`` takes it."""
        return StreamRef(stream_type="contact", stream_id=str(pk))

    def count_soft_failure(self, *, at: datetime, threshold: int, evidence: dict[str, Any]) -> bool:
        """One more temporary failure in a row; True when it is the one that makes the address soft-failing."""
        ContactPoint.objects.filter(pk=self.pk).update(soft_failures=F("soft_failures") + 1, last_failure_at=at)
        self.refresh_from_db(fields=["soft_failures", "last_failure_at", "state"])
        if self.state != ContactState.ACTIVE or self.soft_failures < threshold:
            return False
        self.state = ContactState.SOFT_FAILING
        self.reason = f"{self.soft_failures} temporary failures in a row"
        self.evidence = evidence
        self.save(update_fields=["state", "reason", "evidence", "updated_at"])
        return True

    def mark_defunct(self, *, reason: str, evidence: dict[str, Any], at: datetime) -> None:
        """A permanent recipient failure: nothing is sent here again until staff reactivate it."""
        self.state = ContactState.DEFUNCT
        self.reason = reason[:200]
        self.evidence = evidence
        self.last_failure_at = at
        self.save()

    def reactivate(self) -> tuple[str, str]:
        """Back to active with a clean slate; returns the state and reason it had."""
        previous = (self.state, self.reason)
        self.state, self.reason, self.soft_failures = ContactState.ACTIVE, "", 0
        self.evidence = {**self.evidence, "reactivated_from": previous[0], "previous_reason": previous[1]}
        self.save()
        return previous


class Preference(models.Model):
    """The channels a recipient allows for a message category; a channel left out is opted out.

    No row means every channel is allowed. ``version`` goes up with every change, so a signed unsubscribe
    link issued before a change is recognised as stale. Mandatory messages ignore preferences.
    """

    recipient = models.CharField(max_length=200)
    category = models.CharField(max_length=50)
    channels = models.JSONField(default=list)
    version = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["recipient", "category"], name="comms_preference_unique")]

    def __str__(self) -> str:
        return f"{self.recipient} {self.category}: {', '.join(self.channels) or 'opted out'}"

    def allows(self, channel: str) -> bool:
        return channel in self.channels


class MessageQuerySet(models.QuerySet["Message"]):
    def failed(self) -> MessageQuerySet:
        return self.filter(status=Status.FAILED)

    def resendable(self, *, force: bool = False) -> MessageQuerySet:
        """Messages a resend would act on: not in flight, and not already delivered unless forced."""
        qs = self.exclude(status__in=ACTIVE_STATUSES)
        return qs if force else qs.exclude(status__in=DONE_OK)


class Message(models.Model):
    message_type = models.CharField(max_length=100)
    category = models.CharField(max_length=50)
    mandatory = models.BooleanField(default=False)
    recipient = models.CharField(max_length=200)
    addresses = models.JSONField(default=dict)
    channels = models.JSONField(default=list)
    context = models.JSONField(default=dict)
    subject = models.CharField(max_length=300, blank=True, default="")
    text_body = models.TextField(blank=True, default="")
    html_body = models.TextField(blank=True, default="")
    sms_text = models.TextField(blank=True, default="")
    push_title = models.CharField(max_length=200, blank=True, default="")
    push_body = models.TextField(blank=True, default="")
    mailer = models.CharField(max_length=50, default="default")
    # The signed link that turns the message's category off; emails carry it as List-Unsubscribe.
    unsubscribe_url = models.CharField(max_length=1000, blank=True, default="")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    failure_class = models.CharField(max_length=15, choices=FailureClass.choices, blank=True, default="")
    channel = models.CharField(max_length=10, choices=Channel.choices, blank=True, default="")
    idempotency_key = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    send_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    # The recipient's IANA time zone, for send windows; empty means the site's TIME_ZONE.
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # Set when the message waits for its send window: until when, and why, for the message page.
    held_until = models.DateTimeField(null=True, blank=True)
    hold_reason = models.CharField(max_length=200, blank=True, default="")
    updated_at = models.DateTimeField(auto_now=True)

    objects = MessageQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["idempotency_key"], condition=~Q(idempotency_key=""), name="comms_message_idem"
            )
        ]
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="comms_msg_created"),
            models.Index(fields=["status", "-created_at", "-id"], name="comms_msg_status"),
            models.Index(fields=["failure_class", "-created_at", "-id"], name="comms_msg_failure"),
            models.Index(fields=["recipient", "-created_at"], name="comms_msg_recipient"),
            models.Index(fields=["message_type", "-created_at"], name="comms_msg_type"),
        ]
        permissions = [("resend_message", "Can resend messages"), ("cancel_message", "Can cancel messages")]

    def __str__(self) -> str:
        return f"{self.message_type} to {self.recipient} (#{self.pk})"

    @staticmethod
    def stream_of(pk: int) -> StreamRef:
        """The log stream of a message's events, as ``emit()`` takes it."""
        return StreamRef(stream_type="message", stream_id=str(pk))

    @property
    def expired(self) -> bool:
        return self.expires_at <= timezone.now()

    @property
    def in_flight(self) -> bool:
        """Queued, being sent or waiting for a retry: a resend now would send it twice."""
        return self.status in ACTIVE_STATUSES


class DeliveryQuerySet(models.QuerySet["Delivery"]):
    def claimable(self, now: datetime) -> DeliveryQuerySet:
        return self.filter(status__in=(Status.QUEUED, Status.DEFERRED), next_attempt_at__lte=now)


class Delivery(models.Model):
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    failure_class = models.CharField(max_length=15, choices=FailureClass.choices, blank=True, default="")
    reason = models.CharField(max_length=300, blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_token = models.CharField(max_length=32, blank=True, default="")
    # Set by the worker just before it talks to the provider: from then on the delivery can no longer be
    # cancelled (a claimed delivery without it still can, and the worker then skips it).
    handed_at = models.DateTimeField(null=True, blank=True)
    provider_id = models.CharField(max_length=200, blank=True, default="")
    # The provider that took it ("email:<alias>", "sms:<name>"): with failover, not always the first one.
    provider = models.CharField(max_length=80, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = DeliveryQuerySet.as_manager()

    class Meta:
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="comms_delivery_due"),
            models.Index(fields=["provider_id"], name="comms_delivery_provider"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} to {self.address} ({self.status})"


class Attempt(models.Model):
    # How an attempt that made the delivery move on to the channel's next provider begins its error.
    FAILED_OVER = "failed over to the next provider"

    class Outcome(models.TextChoices):
        SENT = "sent", "Accepted"
        TEMPORARY = "temporary", "Temporary failure"
        RECIPIENT = "recipient", "Recipient rejected"
        POLICY = "policy", "Policy rejection"
        INFRASTRUCTURE = "infrastructure", "Permanent infrastructure failure"

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_set")
    at = models.DateTimeField(default=timezone.now)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    address = models.CharField(max_length=254)
    outcome = models.CharField(max_length=15, choices=Outcome.choices)
    code = models.PositiveIntegerField(null=True, blank=True)
    enhanced_code = models.CharField(max_length=12, blank=True, default="")
    provider_id = models.CharField(max_length=200, blank=True, default="")
    provider = models.CharField(max_length=80, blank=True, default="")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["at", "id"]
        # The dashboard's recent error rate per provider reads the last hour of attempts.
        indexes = [models.Index(fields=["at"], name="comms_attempt_at")]

    def __str__(self) -> str:
        return f"{self.channel} to {self.address}: {self.outcome}"


class ProviderEvent(models.Model):
    """A provider's report (webhook or anymail signal) once, so a duplicate changes nothing."""

    source = models.CharField(max_length=50)
    event_id = models.CharField(max_length=200)
    event_type = models.CharField(max_length=30)
    delivery = models.ForeignKey(Delivery, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    payload = models.JSONField(default=dict)
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["source", "event_id"], name="comms_provider_event_once")]

    def __str__(self) -> str:
        return f"{self.source} {self.event_type} {self.event_id}"


class Alert(models.Model):
    """Something staff must look at: a policy rejection or a mandatory message that was not delivered."""

    kind = models.CharField(max_length=30)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    text = models.CharField(max_length=300)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["-created_at"], name="comms_alert_recent")]

    def __str__(self) -> str:
        return self.text


class Breaker(models.TextChoices):
    CLOSED = "closed", "Closed (sending)"
    OPEN = "open", "Open (skipped)"


class ProviderStateQuerySet(models.QuerySet["ProviderState"]):
    def named(self, names: list[str]) -> dict[str, ProviderState]:
        """The rows of ``names``, created closed where missing (one query when they all exist)."""
        found = {state.name: state for state in self.filter(name__in=names)}
        missing = [ProviderState(name=name) for name in names if name not in found]
        if missing:
            self.bulk_create(missing, ignore_conflicts=True)
            found = {state.name: state for state in self.filter(name__in=names)}
        return found


class ProviderState(models.Model):
    """One provider's circuit breaker and rate-limit window, shared by every worker through the database."""

    name = models.CharField(max_length=80, unique=True)
    breaker = models.CharField(max_length=10, choices=Breaker.choices, default=Breaker.CLOSED)
    # Provider-level failures in a row; the breaker opens when they reach BREAKER_FAILURES.
    failures = models.PositiveIntegerField(default=0)
    opened_at = models.DateTimeField(null=True, blank=True)
    # When an open breaker lets its next probe through; a worker takes the probe by moving this on.
    probe_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True, default="")
    # Fixed rate-limit window: its number (seconds since the epoch // its length) and the messages sent in it.
    window = models.BigIntegerField(default=0)
    window_count = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ProviderStateQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.breaker})"


def as_json(value: Any) -> Any:
    """Context values stored with a message: JSON-safe, so the detail page can show what was rendered."""
    if isinstance(value, dict):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
