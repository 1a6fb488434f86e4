from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models.functions import Now
from django.db.models.lookups import Exact, IsNull
from django.utils import timezone

from console.events.db import CurrentTransactionId, MetadataText
from console.events.records import StreamRef

# How long a one-line summary of an event's data may grow (the audit log's table shows it).
SUMMARY_LIMIT = 120


class EventQuerySet(models.QuerySet["Event"]):
    def of_stream(self, stream_id: str) -> EventQuerySet:
        return self.filter(stream_id=stream_id).order_by("version", "position")

    def after(self, position: int) -> EventQuerySet:
        return self.filter(position__gt=position).order_by("position")

    def recorded_by(self, moment: datetime) -> EventQuerySet:
        """Events recorded at or before ``moment``.

        SQLite stores the database clock as text with milliseconds while Django writes a datetime parameter
        without its fraction when it is zero, so ``recorded_at <= moment`` misses an event recorded on an
        exact second; comparing with the next microsecond is exact on both databases.
        """
        return self.filter(recorded_at__lt=moment + timedelta(microseconds=1))

    def with_request(self, request_id: str) -> EventQuerySet:
        # The expression and the condition of the partial index "event_request_id", so the database uses it.
        return self.filter(Exact(MetadataText("request_id"), request_id))

    def caused_by(self, position: int) -> EventQuerySet:
        # As with_request, for the index "event_causation_id".
        return self.filter(Exact(MetadataText("causation_id"), str(position)))

    def update(self, **kwargs: Any) -> int:
        raise TypeError("The event log is append-only: events are never updated.")


class Event(models.Model):
    """One entry of the append-only event log: the audit log and the event store are this table.

    ``position`` orders the log; ``tx`` (PostgreSQL only) is the writing transaction, which the gapless
    reader uses to read in commit order. Rows are only ever inserted, and deleted by retention.
    """

    position = models.BigAutoField(primary_key=True)
    stream_type = models.CharField(max_length=100, blank=True, default="")
    stream_id = models.CharField(max_length=200, blank=True, default="")
    version = models.PositiveIntegerField(null=True, blank=True)
    type = models.CharField(max_length=100)
    schema_version = models.PositiveSmallIntegerField(default=1)
    data = models.JSONField(default=dict)
    metadata = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    recorded_at = models.DateTimeField(db_default=Now())
    tx = models.BigIntegerField(null=True, blank=True, db_default=CurrentTransactionId(), editable=False)

    objects = EventQuerySet.as_manager()

    class Meta:
        ordering = ["-position"]
        constraints = [
            models.UniqueConstraint(
                fields=["stream_id", "version"],
                condition=models.Q(version__isnull=False),
                name="event_stream_version_unique",
            )
        ]
        # Indexes on what many events lack (an actor, a request, a cause; a transaction id outside PostgreSQL)
        # leave those events out: every index an append touches is another page written at each commit.
        indexes = [
            models.Index(fields=["type", "-position"], name="event_type_pos"),
            models.Index(
                fields=["actor", "-position"], name="event_actor_pos", condition=models.Q(actor__isnull=False)
            ),
            models.Index(fields=["stream_id", "-position"], name="event_stream_pos"),
            # What a projection of whole stream types is behind on (the dashboard's projections panel).
            models.Index(
                fields=["stream_type", "position"], name="event_stream_type_pos", condition=~models.Q(stream_type="")
            ),
            models.Index(fields=["recorded_at"], name="event_recorded_at"),
            models.Index(fields=["tx", "position"], name="event_tx_pos", condition=models.Q(tx__isnull=False)),
            models.Index(
                MetadataText("request_id"),
                name="event_request_id",
                condition=models.Q(IsNull(MetadataText("request_id"), False)),
            ),
            models.Index(
                MetadataText("causation_id"),
                name="event_causation_id",
                condition=models.Q(IsNull(MetadataText("causation_id"), False)),
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.position} {self.type}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding:
            raise TypeError("The event log is append-only: events are never updated.")
        super().save(*args, **kwargs)

    @property
    def request_id(self) -> str:
        return str(self.metadata.get("request_id", ""))

    @property
    def recorded_at_text(self) -> str:
        """When it was recorded, to the second, in the current time zone (the ``date`` filter costs ten times more)."""
        return timezone.localtime(self.recorded_at).strftime("%Y-%m-%d %H:%M:%S")

    @property
    def summary(self) -> str:
        """The first few fields of ``data`` in one short line, for a table cell."""
        text = ", ".join(f"{key}={item}" for key, item in list(self.data.items())[:4])
        return text if len(text) <= SUMMARY_LIMIT else text[: SUMMARY_LIMIT - 1] + "…"


class CheckpointQuerySet(models.QuerySet["Checkpoint"]):
    def active(self) -> CheckpointQuerySet:
        return self.filter(status=Checkpoint.Status.ACTIVE)


class Checkpoint(models.Model):
    """How far one subscriber has read the log; moved only forward, in the transaction of its writes."""

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        PAUSED = "paused", "paused"

    name = models.CharField(max_length=100, unique=True)
    tx = models.BigIntegerField(null=True, blank=True)
    position = models.BigIntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    handled = models.BigIntegerField(default=0)
    failures = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    retry_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = CheckpointQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} at {self.position}"

    @property
    def cursor(self) -> tuple[int | None, int]:
        return (self.tx, self.position)


class ParkedEvent(models.Model):
    """An event a subscriber failed on too often: set aside so the subscriber can move on."""

    checkpoint = models.ForeignKey(Checkpoint, on_delete=models.CASCADE, related_name="parked")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="+")
    error = models.TextField()
    attempts = models.PositiveIntegerField()
    parked_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-parked_at"]
        constraints = [models.UniqueConstraint(fields=["checkpoint", "event"], name="parked_event_once")]

    def __str__(self) -> str:
        return f"{self.checkpoint.name}: #{self.event_id}"


def generate_webhook_secret() -> str:
    import base64
    import secrets

    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


class WebhookEndpoint(models.Model):
    """A URL that receives published events, signed with its own secret (Standard Webhooks)."""

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    secret = models.CharField(max_length=100, default=generate_webhook_secret)
    # During a rotation the old secret signs alongside the new one until it expires, so receivers can switch
    # at their own pace (Standard Webhooks allows several signatures in one header).
    previous_secret = models.CharField(max_length=100, blank=True, default="")
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_created_at = models.DateTimeField(default=timezone.now)
    event_types = models.JSONField(default=list, blank=True, help_text="Published event types; empty means all.")
    active = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    # When the sender switched it off (None when a user did, or it is on), and how far the publisher had read
    # the log then: re-enabling "from where it stopped" queues what was published after that position.
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_position = models.BigIntegerField(null=True, blank=True)
    failure_streak = models.PositiveIntegerField(default=0)
    # The first failed attempt since the last success: failing for WEBHOOK_DISABLE_AFTER_HOURS disables.
    failing_since = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_error_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    @staticmethod
    def stream_of(pk: int) -> StreamRef:
        """The log stream of an endpoint's events, as ``emit()`` takes it."""
        return StreamRef(stream_type="webhook", stream_id=f"webhook-{pk}")

    def wants(self, event_type: str) -> bool:
        return self.active and (not self.event_types or event_type in self.event_types)

    def signing_secrets(self, now: datetime | None = None) -> list[str]:
        """The secrets a delivery is signed with now: the current one, and the previous one until it expires."""
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret and expires is not None and expires > (now or timezone.now()):
            secrets.append(self.previous_secret)
        return secrets

    @property
    def rotating(self) -> bool:
        return len(self.signing_secrets()) > 1


class WebhookHealthQuerySet(models.QuerySet["WebhookHealth"]):
    def since(self, moment: datetime) -> WebhookHealthQuerySet:
        return self.filter(hour__gte=moment).order_by("-hour")


class WebhookHealth(models.Model):
    """Attempts to one endpoint in one hour: the success rate and latency over time, in bounded rows."""

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="health")
    hour = models.DateTimeField()
    attempts = models.PositiveIntegerField(default=0)
    succeeded = models.PositiveIntegerField(default=0)
    total_ms = models.PositiveBigIntegerField(default=0)
    max_ms = models.PositiveIntegerField(default=0)

    objects = WebhookHealthQuerySet.as_manager()

    class Meta:
        ordering = ["-hour"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "hour"], name="webhook_health_hour_once")]

    def __str__(self) -> str:
        return f"{self.endpoint_id} at {self.hour:%Y-%m-%d %H:00}"

    @property
    def success_percent(self) -> int:
        return round(100 * self.succeeded / self.attempts) if self.attempts else 0

    @property
    def mean_ms(self) -> int:
        return round(self.total_ms / self.attempts) if self.attempts else 0


class WebhookDeliveryQuerySet(models.QuerySet["WebhookDelivery"]):
    def claimable(self, now: Any, *, stale_before: Any) -> WebhookDeliveryQuerySet:
        """Deliveries due now, and ones whose sender died mid-send (claimed before ``stale_before``)."""
        return self.filter(
            models.Q(
                status__in=[WebhookDelivery.Status.PENDING, WebhookDelivery.Status.RETRYING], next_attempt_at__lte=now
            )
            | models.Q(status=WebhookDelivery.Status.SENDING, claimed_at__lt=stale_before)
        )


class WebhookDelivery(models.Model):
    """One event to send to one endpoint: an outbox row written with the subscriber's checkpoint."""

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENDING = "sending", "sending"
        RETRYING = "retrying", "retrying"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(Event, null=True, on_delete=models.SET_NULL, related_name="+")
    event_position = models.BigIntegerField()
    event_type = models.CharField(max_length=100)
    message_id = models.CharField(max_length=100)
    # Queued by a replay of a range rather than by the publisher: the body says so too ("replay": true).
    replay = models.BooleanField(default=False)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    last_response = models.TextField(blank=True, default="")
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    objects = WebhookDeliveryQuerySet.as_manager()

    class Meta:
        ordering = ["-pk"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="webhook_delivery_due"),
            models.Index(fields=["endpoint", "-id"], name="webhook_delivery_endpoint"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} #{self.event_position} to {self.endpoint_id}"


class Grain(models.IntegerChoices):
    """How long one rollup bucket lasts, in seconds."""

    MINUTE = 60, "minute"
    HOUR = 3600, "hour"
    DAY = 86400, "day"


class RollupQuerySet(models.QuerySet["Rollup"]):
    def window(self, series: str, grain: int, start: datetime, end: datetime) -> RollupQuerySet:
        """Buckets of one series and grain that start in ``[start, end)``."""
        return self.filter(series=series, grain=grain, bucket__gte=start, bucket__lt=end)


class Rollup(models.Model):
    """A count (and sum, and histogram of values) of what the log recorded in one time bucket.

    Written only by the ``events.rollups`` subscriber, in the transaction that moves its checkpoint, so it can
    be dropped and rebuilt from the log at any time. ``series`` names what is counted (``jobs.runs``), ``key``
    one bounded value of it (``failed``); ``histogram`` counts values per bound of ``rollups.BOUNDS``.
    """

    series = models.CharField(max_length=100)
    key = models.CharField(max_length=200, blank=True, default="")
    grain = models.PositiveIntegerField(choices=Grain.choices)
    bucket = models.DateTimeField()
    count = models.BigIntegerField(default=0)
    total = models.FloatField(default=0)
    histogram = models.JSONField(default=list, blank=True)

    objects = RollupQuerySet.as_manager()

    class Meta:
        ordering = ["series", "grain", "bucket", "key"]
        constraints = [
            models.UniqueConstraint(fields=["series", "grain", "bucket", "key"], name="rollup_bucket_unique")
        ]
        # Pruning deletes by grain and age across every series.
        indexes = [models.Index(fields=["grain", "bucket"], name="rollup_grain_bucket")]

    def __str__(self) -> str:
        return f"{self.series}[{self.key}] @ {self.bucket:%Y-%m-%d %H:%M} x{self.count}"


class Seal(models.Model):
    """A batch of the log, hashed together with the previous seal: the chain that makes editing evident.

    ``digests`` holds, per sealed event in commit order, its position (8 bytes, big-endian) and the SHA-256
    of its canonical JSON; ``hash`` is the SHA-256 of the previous seal's hash followed by ``digests``. The
    seal outlives its events: a pruned event is checked against its archive by the digest kept here.
    ``first_*``/``last_*`` are the reader's cursors of the first and last event sealed (``tx`` is NULL
    where the reader orders by position alone).
    """

    first_tx = models.BigIntegerField(null=True, blank=True)
    first_position = models.BigIntegerField()
    last_tx = models.BigIntegerField(null=True, blank=True)
    last_position = models.BigIntegerField()
    # The lowest and highest position sealed (commit order is not position order): where archives may overlap.
    min_position = models.BigIntegerField()
    max_position = models.BigIntegerField()
    count = models.PositiveIntegerField()
    digests = models.BinaryField()
    previous_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # Names of the archive files holding events of this seal that retention pruned.
    archives = models.JSONField(default=list, blank=True)
    sealed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-pk"]
        permissions = [("verify_log", "Can verify the sealed log against its seals")]

    def __str__(self) -> str:
        return f"seal {self.pk}: {self.count} events to #{self.last_position}"

    @property
    def last_cursor(self) -> tuple[int | None, int]:
        return (self.last_tx, self.last_position)


class Archive(models.Model):
    """One file of pruned events of one type (gzip-compressed JSON lines), with its checksum."""

    name = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=100)
    first_position = models.BigIntegerField()
    last_position = models.BigIntegerField()
    count = models.PositiveIntegerField()
    oldest_recorded_at = models.DateTimeField()
    newest_recorded_at = models.DateTimeField()
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["event_type", "first_position"]
        indexes = [models.Index(fields=["first_position", "last_position"], name="archive_positions")]

    def __str__(self) -> str:
        return self.name
