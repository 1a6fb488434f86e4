"""The events app's settings: ``CONSOLE_EVENTS`` in the site's settings, with defaults, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, register

from console.core.conf import AT_LEAST_ZERO, POSITIVE, AppSettings

READERS = ("xid", "table_lock")
ROLLUP_KEEP_DAYS = {"minute": 2, "hour": 10, "day": 400}
# The shortest keep per grain that still fills the charts' longest range at that grain.
ROLLUP_KEEP_AT_LEAST = {"minute": 1, "hour": 7, "day": 30}


@dataclass(frozen=True)
class EventsSettings(AppSettings):
    SETTING = "CONSOLE_EVENTS"
    CHECK_ID = "console.events"

    # How the gapless reader finds commit order on PostgreSQL (SQLite serializes writers anyway).
    reader: str = "xid"
    # Whether an emit that does not match its declaration raises (None: only when DEBUG is on).
    strict: bool | None = None
    # Bearer tokens for machine clients; staff sessions are always accepted.
    metrics_token: str = ""
    feed_token: str = ""
    feed_limit: int = field(default=500, metadata=POSITIVE)
    # prometheus_client's multiprocess directory, shared by every web and worker process of the site;
    # PROMETHEUS_MULTIPROC_DIR in the environment wins; empty: a directory in the system's temporary one.
    metrics_dir: str = ""
    # Subscriptions: backoff after a failing event, doubled per failure up to the cap.
    retry_base_seconds: float = field(default=2.0, metadata=AT_LEAST_ZERO)
    retry_max_seconds: float = field(default=3600.0, metadata=POSITIVE)
    # Webhooks: one attempt's whole budget (connect, send, read), and how much of an answer is read and kept.
    webhook_timeout_seconds: float = field(default=10.0, metadata=POSITIVE)
    webhook_response_max_bytes: int = field(default=64 * 1024, metadata=POSITIVE)
    webhook_max_attempts: int = field(default=12, metadata=POSITIVE)
    webhook_retry_base_seconds: float = field(default=30.0, metadata=AT_LEAST_ZERO)
    webhook_retry_max_seconds: float = field(default=6 * 3600.0, metadata=POSITIVE)
    # An endpoint whose attempts have all failed for this long is disabled (Svix and Hookdeck wait 5 days).
    webhook_disable_after_hours: float = field(default=120.0, metadata=POSITIVE)
    webhook_allow_private: bool = False
    # Replaying a range to an endpoint: above this many events the user confirms the count; above the maximum
    # the range is refused (counting stops there, so a huge range costs no more than the maximum).
    webhook_replay_confirm_above: int = field(default=1000, metadata=AT_LEAST_ZERO)
    webhook_replay_max_events: int = field(default=100_000, metadata=POSITIVE)
    # After a secret rotation, how long the old secret still signs alongside the new one (the form's default).
    webhook_secret_overlap_hours: float = field(default=24.0, metadata=AT_LEAST_ZERO)
    # Retention: days per event type, overriding the declaration; audit types are kept unless listed here.
    retention_days: dict[str, int] = field(default_factory=dict)
    retention_batch: int = field(default=5000, metadata=POSITIVE)
    # Where pruned events are archived before they are deleted; empty: nothing is pruned (see retention.py).
    archive_dir: str = ""
    # Whether the sealer hashes the log into a chain of seals (``manage.py events verify`` checks it).
    seal: bool = True
    # Free-text search in the audit log looks at this many newest events at most.
    search_window: int = field(default=50_000, metadata=POSITIVE)
    # Rollups (the charts' counts): days each grain of bucket is kept. Minute buckets serve the last hour,
    # hour buckets the last day and week, day buckets the last month and whatever a site keeps beyond it.
    # A site names only the grains it changes.
    rollup_keep_days: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if self.reader not in READERS:
            found.append(f"READER must be one of {', '.join(READERS)}.")
        if not all(days >= 0 for days in self.retention_days.values()):
            found.append("RETENTION_DAYS maps event types to whole days, zero or more.")
        keep = self.rollup_keep_days
        if set(keep) - set(ROLLUP_KEEP_DAYS):
            found.append("ROLLUP_KEEP_DAYS maps minute, hour and day to whole days.")
        elif any(keep.get(grain, least) < least for grain, least in ROLLUP_KEEP_AT_LEAST.items()):
            least = ", ".join(f"{grain} {days}" for grain, days in ROLLUP_KEEP_AT_LEAST.items())
            found.append(f"ROLLUP_KEEP_DAYS keeps too little for the charts: at least {least}.")
        if self.retention_days and not self.archive_dir:
            found.append("RETENTION_DAYS prunes events only into an archive: set ARCHIVE_DIR too.")
        return found


events_settings = EventsSettings.load


@register()
def check_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return EventsSettings.check()
