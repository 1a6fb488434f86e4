from __future__ import annotations

from typing import Any, ClassVar

from django.conf import settings
from django.db import models
from django.db.models.functions import Coalesce

# What the projections page's rebuild, pause, resume and cancel need, and a rebuild run as a job.
MANAGE_PROJECTION = "eventsourcing.manage_projection"


class Snapshot(models.Model):
    """The latest state of one aggregate, to load long streams from here instead of from version 1."""

    stream_id = models.CharField(max_length=200, unique=True)
    stream_type = models.CharField(max_length=100)
    version = models.PositiveIntegerField()
    schema_version = models.PositiveSmallIntegerField()
    state = models.JSONField()
    taken_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.stream_id} at v{self.version}"


class ProjectionState(models.Model):
    """Which generation of a projection's read-model rows is live; rebuilds write the next one beside it."""

    name = models.CharField(max_length=100, unique=True)
    live_generation = models.PositiveIntegerField(default=0)
    next_generation = models.PositiveIntegerField(default=1)
    swapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        permissions = [("manage_projection", "Can rebuild, pause, resume and cancel projections")]

    def __str__(self) -> str:
        return f"{self.name} (generation {self.live_generation})"


class RebuildRunQuerySet(models.QuerySet["RebuildRun"]):
    def of(self, projection: str) -> RebuildRunQuerySet:
        return self.filter(projection=projection)

    def unfinished(self) -> RebuildRunQuerySet:
        return self.filter(status__in=RebuildRun.UNFINISHED)


class RebuildRun(models.Model):
    """One rebuild of a projection into a fresh generation: its bound, progress and resume point."""

    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        CANCELLING = "cancelling", "cancelling"
        CANCELLED = "cancelled", "cancelled"
        FAILED = "failed", "failed"
        READY = "ready", "ready (copy)"
        LIVE = "live", "live"
        DISCARDED = "discarded", "discarded"

    UNFINISHED: ClassVar[tuple[str, ...]] = (Status.QUEUED, Status.RUNNING, Status.CANCELLING)
    RESUMABLE: ClassVar[tuple[str, ...]] = (Status.CANCELLED, Status.FAILED)

    projection = models.CharField(max_length=100)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    generation = models.PositiveIntegerField()
    as_of_position = models.BigIntegerField(null=True, blank=True)
    as_of_time = models.DateTimeField(null=True, blank=True)
    # Swap into the live tables when done; otherwise the finished copy waits beside the live one.
    swap = models.BooleanField(default=True)
    # The last event (in commit order) an "as of" rebuild replays; both null means up to the head.
    until_tx = models.BigIntegerField(null=True, blank=True)
    until_position = models.BigIntegerField(null=True, blank=True)
    tx = models.BigIntegerField(null=True, blank=True)
    position = models.BigIntegerField(default=0)
    processed = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    # Events of the projection's stream types whose type no code registers any more: reported, not replayed.
    skipped = models.BigIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RebuildRunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["projection", "status"], name="es_rebuild_proj_status")]

    def __str__(self) -> str:
        return f"rebuild #{self.pk} of {self.projection}"

    @property
    def cursor(self) -> tuple[int | None, int]:
        return (self.tx, self.position)

    @property
    def percent(self) -> int:
        if self.status in (self.Status.READY, self.Status.LIVE):
            return 100
        if not self.total:
            return 0
        return min(99, int(self.processed * 100 / self.total))

    @property
    def is_finished(self) -> bool:
        return self.status not in self.UNFINISHED

    @property
    def as_of_label(self) -> str:
        if self.as_of_position is not None:
            return f"position {self.as_of_position}"
        if self.as_of_time is not None:
            return self.as_of_time.isoformat(timespec="seconds")
        return "now"


class LiveManager(models.Manager[Any]):
    """Only the rows of the projection's live generation: what every ordinary query should see."""

    def get_queryset(self) -> models.QuerySet[Any]:
        live = ProjectionState.objects.filter(name=self.model.projection).values("live_generation")[:1]
        return super().get_queryset().filter(generation=Coalesce(models.Subquery(live), 0))


class ReadModel(models.Model):
    """Base of projection read models: ordinary models whose rows also carry the generation that wrote them.

    ``objects`` shows the live generation only, so generic views, the admin and ORM queries need nothing
    special; ``generations`` sees every row (rebuild copies included).
    """

    projection: ClassVar[str]
    generation = models.PositiveIntegerField(default=0, editable=False)

    objects: ClassVar[LiveManager] = LiveManager()
    generations: ClassVar[models.Manager[Any]] = models.Manager()

    class Meta:
        abstract = True

    @classmethod
    def get_list_url(cls) -> str:
        """The page listing this read model's live rows (``?generation=N`` for a copy); empty when none does.

        The projections and streams pages link to read models through this, so they need not know the apps
        that define them.
        """
        return ""
