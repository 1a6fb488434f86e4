from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from difflib import SequenceMatcher
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from console.events.records import StreamRef
from console.jobs.access import RUN, VIEW_ALL, Access, JobClass, classes_seen_by
from console.jobs.vault import unseal
from console.jobs.when import describe_cron, last_cron, last_interval, next_cron, next_interval

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, PermissionsMixin


class Status(models.TextChoices):
    AWAITING = "awaiting", "awaiting approval"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    LOST = "lost"
    REJECTED = "rejected"


def status_text(status: str) -> str:
    """A status as the pages say it: "awaiting approval" rather than its short stored value."""
    return str(Status.AWAITING.label) if status == Status.AWAITING else status


# A run awaiting approval is active: it holds an exclusive command's turn, and it may still run.
ACTIVE = (Status.AWAITING, Status.QUEUED, Status.RUNNING, Status.CANCELLING)
LIVE = (Status.RUNNING, Status.CANCELLING)
FINAL = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED, Status.LOST, Status.REJECTED)


@dataclass(frozen=True)
class ArgumentRow:
    """One row of two runs' arguments side by side: ``left`` or ``right`` is None where a run has no such token."""

    left: str | None
    right: str | None
    change: str  # "same", "changed", "removed" (only on the left), "added" (only on the right)


def compare_arguments(left: list[str], right: list[str]) -> list[ArgumentRow]:
    """Two command lines side by side, token by token, aligned where they agree (as a diff aligns lines)."""
    rows: list[ArgumentRow] = []
    matcher = SequenceMatcher(a=left, b=right, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            rows.extend(ArgumentRow(token, token, "same") for token in left[i1:i2])
            continue
        olds, news = left[i1:i2], right[j1:j2]
        for k in range(max(len(olds), len(news))):
            old = olds[k] if k < len(olds) else None
            new = news[k] if k < len(news) else None
            change = "changed" if old is not None and new is not None else ("removed" if new is None else "added")
            rows.append(ArgumentRow(old, new, change))
    return rows


class JobRunQuerySet(models.QuerySet["JobRun"]):
    def active(self) -> JobRunQuerySet:
        return self.filter(status__in=ACTIVE)

    def final(self) -> JobRunQuerySet:
        return self.filter(status__in=FINAL)

    def stale(self, *, older_than: timedelta) -> JobRunQuerySet:
        """Runs that claim to be running but have not heartbeated for ``older_than``."""
        return self.filter(status__in=LIVE, heartbeat_at__lt=timezone.now() - older_than)

    def awaiting_approval(self) -> JobRunQuerySet:
        return self.filter(status=Status.AWAITING)

    def unclaimed(self, *, older_than: timedelta) -> JobRunQuerySet:
        return self.filter(status=Status.QUEUED, queued_at__lt=timezone.now() - older_than)

    def visible_to(self, user: PermissionsMixin | AnonymousUser) -> JobRunQuerySet:
        """Runs whose page and output ``user`` may read: those of a class they may run, or all with VIEW_ALL."""
        rule = readable_by(user)
        return self if rule is None else self.filter(rule)


class CommandLine(models.Model):
    """A command with its arguments as the generated form made them: what a run runs and a schedule repeats."""

    command = models.CharField(max_length=100)
    app = models.CharField(max_length=200, blank=True, default="")
    argv = models.JSONField(
        default=list, help_text="Arguments after the command name as run, secret values masked (see sealed_secrets)."
    )
    argv_display = models.TextField(
        blank=True, default="", help_text="The command line with secret values masked: what is shown and searched."
    )
    secret_indexes = models.JSONField(default=list, blank=True, help_text="Positions in argv holding secrets.")
    sealed_secrets = models.TextField(
        blank=True, default="", help_text="The secret arguments, encrypted with a key derived from SECRET_KEY."
    )
    # Rows nobody classed (older than classes) are the most restricted: readable with the view-all right only.
    job_class = models.CharField(max_length=20, choices=JobClass.choices, default=JobClass.DESTRUCTIVE)
    permission = models.CharField(
        max_length=255, blank=True, default="", help_text="For the class “console page”: the page's permission."
    )
    form_data = models.JSONField(
        default=dict, blank=True, help_text="The form as submitted, secrets left out: prefills an edited re-run."
    )

    class Meta:
        abstract = True

    @property
    def access(self) -> Access:
        return Access(JobClass(self.job_class), self.permission)

    def may_be_read_by(self, user: PermissionsMixin | AnonymousUser) -> bool:
        """The same rule as ``visible_to`` on the QuerySets, for one row."""
        return user.has_perm(VIEW_ALL) or not self.access.missing(user)

    def real_argv(self) -> list[str]:
        """argv as the command must get it, the secrets unsealed (``Unsealable`` when the key is gone)."""
        secrets = unseal(self.sealed_secrets)
        return [secrets.get(i, value) for i, value in enumerate(self.argv)]

    def secret_values(self) -> list[str]:
        return list(unseal(self.sealed_secrets).values())


def readable_by(user: PermissionsMixin | AnonymousUser) -> Q | None:
    """Which command lines ``user`` may read: those of a class they may run (None: all, with VIEW_ALL)."""
    if user.has_perm(VIEW_ALL):
        return None
    held = user.get_all_permissions()
    pages = sorted(held) if RUN in held else []
    return Q(job_class__in=classes_seen_by(held)) | Q(job_class=JobClass.CONSOLE, permission__in=pages)


class JobRun(CommandLine):
    """One execution of a management command, from the request that queued it to its exit."""

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="job_runs"
    )
    reason = models.CharField(max_length=500, blank=True, default="")
    rerun_of = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reruns")
    schedule = models.ForeignKey("Schedule", null=True, blank=True, on_delete=models.SET_NULL, related_name="runs")
    due_at = models.DateTimeField(
        null=True, blank=True, help_text="The schedule's time this run is for; empty for “run now” and plain runs."
    )
    dry_run_flag = models.CharField(
        max_length=100, blank=True, default="", help_text="The flag that made this run a dry run (--dry-run ...)."
    )
    dry_run_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="real_runs",
        help_text="The dry run this run repeats for real.",
    )
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    exclusive = models.BooleanField(default=False)
    timeout_seconds = models.FloatField(default=3600)
    queued_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, default="", help_text="Why the run ended as it did.")
    worker_host = models.CharField(max_length=255, blank=True, default="")
    worker_pid = models.IntegerField(null=True, blank=True)
    child_pid = models.IntegerField(null=True, blank=True, help_text="Also the child's process group id.")
    needs_approval = models.BooleanField(
        default=False, help_text="Whether a second staff user had to approve the run before it could start."
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who approved or rejected a run that needed approval.",
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.CharField(max_length=500, blank=True, default="")
    stop_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    last_seq = models.IntegerField(default=0, help_text="Number of the last output chunk written.")
    line_count = models.BigIntegerField(default=0)
    partial_line = models.TextField(
        blank=True, default="", help_text="The line being written now (a progress bar), not yet ended by a newline."
    )
    cut_lines = models.BigIntegerField(default=0, help_text="Output lines cut from the middle by retention.")
    cut_after_seq = models.IntegerField(null=True, blank=True, help_text="Chunks after this one and before …")
    cut_before_seq = models.IntegerField(null=True, blank=True, help_text="… this one were cut by retention.")

    objects = JobRunQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        permissions = [
            ("run_command", "Can run management commands as jobs (read-only ones with no other permission)"),
            ("run_exposing_command", "Can run commands that show stored data or secrets"),
            ("run_changing_command", "Can run commands that change data"),
            ("run_destructive_command", "Can run destructive commands (with the exposing and changing permissions)"),
            ("view_all_runs", "Can read every run and its output, whatever the command"),
            ("approve_run", "Can approve or reject another user's run that awaits approval (of a class they may run)"),
        ]
        indexes = [
            models.Index(fields=["command", "-id"], name="jobrun_command_id"),
            models.Index(fields=["status", "-id"], name="jobrun_status_id"),
            models.Index(fields=["requested_by", "-id"], name="jobrun_user_id"),
            models.Index(fields=["queued_at"], name="jobrun_queued_at"),
        ]
        constraints = [
            # The per-command lock: a crash cannot leave it stuck, because the reaper moves the run on.
            models.UniqueConstraint(
                fields=["command"],
                condition=models.Q(exclusive=True, status__in=["running", "cancelling"]),
                name="jobrun_one_live_exclusive_run",
            ),
            # A schedule's run for a due time exists once, however many ticks race to create it.
            models.UniqueConstraint(
                fields=["schedule", "due_at"],
                condition=models.Q(due_at__isnull=False),
                name="jobrun_one_run_per_due_time",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.command}"

    @staticmethod
    def stream_of(pk: int) -> StreamRef:
        """The log stream of a run's events, as ``emit()`` takes it."""
        return StreamRef(stream_type="job", stream_id=f"job-{pk}")

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def can_stop(self) -> bool:
        return self.status in (Status.AWAITING, Status.QUEUED, Status.RUNNING)

    @property
    def may_run_for_real(self) -> bool:
        """A dry run that went well may be repeated without its dry-run flag."""
        return bool(self.dry_run_flag) and self.status == Status.SUCCEEDED

    @property
    def awaits_approval(self) -> bool:
        return self.status == Status.AWAITING

    @property
    def status_text(self) -> str:
        return status_text(self.status)

    @property
    def duration(self) -> timedelta | None:
        if self.started_at is None:
            return None
        return (self.finished_at or timezone.now()) - self.started_at


class Stream(models.TextChoices):
    STDOUT = "out", "stdout"
    STDERR = "err", "stderr"


class OutputChunkQuerySet(models.QuerySet["OutputChunk"]):
    def after(self, seq: int) -> OutputChunkQuerySet:
        return self.filter(seq__gt=seq).order_by("seq")


class OutputChunk(models.Model):
    """A batch of complete output lines from one stream, numbered so a browser asks only for what is new."""

    # No index of its own: the (run, seq) unique index serves every lookup by run, and with a second one
    # PostgreSQL may read a run's whole output through it to delete one range of seqs.
    run = models.ForeignKey(JobRun, on_delete=models.CASCADE, related_name="chunks", db_index=False)
    seq = models.IntegerField()
    stream = models.CharField(max_length=3, choices=Stream.choices, default=Stream.STDOUT)
    text = models.TextField()
    lines = models.IntegerField(default=0)

    objects = OutputChunkQuerySet.as_manager()

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="outputchunk_run_seq")]

    def __str__(self) -> str:
        return f"{self.run_id}:{self.seq}"


class Overlap(models.TextChoices):
    SKIP = "skip", "skip while the last run is still going"
    QUEUE = "queue", "queue another run"


class Missed(models.TextChoices):
    RUN_ONCE = "run-once", "run once for all missed times"
    SKIP = "skip", "skip missed times"


class Source(models.TextChoices):
    SETTINGS = "settings", "settings (read-only here)"
    CONSOLE = "console", "console"


class ScheduleQuerySet(models.QuerySet["Schedule"]):
    def due(self, now: datetime) -> ScheduleQuerySet:
        return self.filter(enabled=True, next_run_at__lte=now)

    def visible_to(self, user: PermissionsMixin | AnonymousUser) -> ScheduleQuerySet:
        """Schedules of the commands whose runs ``user`` may read."""
        rule = readable_by(user)
        return self if rule is None else self.filter(rule)


class Schedule(CommandLine):
    """A command line run again and again: on a cron expression or every so many seconds, in a time zone."""

    name = models.CharField(max_length=100, unique=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.CONSOLE)
    cron = models.CharField(max_length=200, blank=True, default="", help_text="Five fields, as in a crontab.")
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC", help_text="What the cron expression's times mean.")
    enabled = models.BooleanField(default=True)
    overlap = models.CharField(max_length=10, choices=Overlap.choices, default=Overlap.SKIP)
    missed = models.CharField(max_length=10, choices=Missed.choices, default=Missed.RUN_ONCE)
    reason = models.CharField(max_length=500, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="job_schedules"
    )
    created_at = models.DateTimeField(default=timezone.now)
    anchor_at = models.DateTimeField(default=timezone.now, help_text="Where intervals are counted from.")
    next_run_at = models.DateTimeField(null=True, blank=True)
    last_due_at = models.DateTimeField(null=True, blank=True)
    last_skipped_at = models.DateTimeField(null=True, blank=True)
    skip_note = models.CharField(max_length=500, blank=True, default="", help_text="Why the last due time had no run.")

    objects = ScheduleQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [models.Index(fields=["enabled", "next_run_at"], name="schedule_due")]

    def __str__(self) -> str:
        return self.name

    @property
    def when(self) -> str:
        if self.cron:
            return f"{self.cron} ({self.time_zone})"
        return f"every {self.interval_seconds} s"

    @property
    def when_in_words(self) -> str:
        return describe_cron(self.cron) if self.cron else ""

    @property
    def read_only(self) -> bool:
        return self.source == Source.SETTINGS

    def next_after(self, moment: datetime) -> datetime | None:
        """The schedule's first time strictly after ``moment`` (None: a cron date that never comes)."""
        if self.cron:
            return next_cron(self.cron, self.time_zone, moment)
        return next_interval(self.anchor_at, self.interval_seconds or 1, moment)

    def last_until(self, moment: datetime) -> datetime | None:
        """The schedule's last time at or before ``moment``: the one a late "run once" runs for."""
        if self.cron:
            return last_cron(self.cron, self.time_zone, moment)
        return last_interval(self.anchor_at, self.interval_seconds or 1, moment)
