"""The jobs app's settings: ``CONSOLE_JOBS`` in the site's settings, every key optional.

::

    CONSOLE_JOBS = {
        "INCLUDE": [],                # command names or app labels; empty means every command
        "EXCLUDE": [],                # command names or app labels, on top of the built-in deny list
        "DENY": [],                   # more command names that can never run, whatever else says
        "CLASSES": {},                # command -> "read-only", "exposes-data", "changes-data" or "destructive"
        "PERMISSIONS": {},            # command -> "app.codename" of the page it stands for, instead of a class
        "TIMEOUTS": {},               # command -> seconds; DEFAULT_TIMEOUT for the rest
        "DEFAULT_TIMEOUT": 3600,
        "EXCLUSIVE": [],              # commands that may not run twice at once ("*" for every command)
        "APPROVALS": [],              # commands or classes ("destructive", ...) a second user must approve
        "DRY_RUN": {},                # command -> its dry-run flag, when it is not one of the usual names
        "HEARTBEAT_SECONDS": 2,       # how often a running job proves it is alive
        "LOST_AFTER_SECONDS": 60,     # a running job silent for this long is lost
        "STOP_GRACE_SECONDS": 5,      # SIGTERM, then SIGKILL after this long
        "FLUSH_SECONDS": 0.2,         # output reaches the database at least this often ...
        "FLUSH_BYTES": 65536,         # ... or as soon as this much is waiting
        "SCHEDULES": {},              # name -> {"command", "args", "cron" or "interval", "timezone", ...}
        "MISSED_AFTER_SECONDS": 300,  # a due time older than this when the tick sees it was missed
        "KEEP_OUTPUT_LINES": [10000, 10000],  # a finished run's first and last lines kept; the middle is cut
        "KEEP_OUTPUT_LINES_BY_COMMAND": {},   # command -> [first, last]
        "KEEP_RUNS_DAYS": 0,          # finished runs and their output are deleted after this long (0: never)
        "KEEP_RUNS_DAYS_BY_COMMAND": {},      # command -> days
        "PRUNE_BATCH": 1000,          # output chunks deleted per transaction: short, so appends never wait long
        "PRUNE_PAUSE_SECONDS": 0.05,  # ... and a pause between two, in which waiting writers get the database
        "WARM_START": True,           # fork runs from a preloaded runner; False: a fresh manage.py for each
        "FRESH_START": [],            # commands that always start in a fresh manage.py ("*" for every command)
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, register

from console.core.conf import AT_LEAST_ZERO, POSITIVE, AppSettings
from console.jobs.access import Access, JobClass
from console.jobs.when import MAX_INTERVAL_SECONDS, check_cron, zone

# Interactive, server, shell, worker, scaffolding and wipe-everything commands never run from the console.
DENY = frozenset(
    {
        "shell",
        "dbshell",
        "runserver",
        "testserver",
        "test",
        "flush",
        "sqlflush",
        "run_huey",
        "db_worker",
        "changepassword",
        "createsuperuser",
        "makemigrations",
        "squashmigrations",
        "optimizemigration",
        "startapp",
        "startproject",
        "makemessages",
        "console_tick",
        "console_admin",
        "console_job",
        "console_warm_runner",
        # django-extensions: shells, servers, database wipes and interactive helpers
        "shell_plus",
        "runserver_plus",
        "runprofileserver",
        "runjob",
        "runjobs",
        "reset_db",
        "reset_schema",
        "drop_test_database",
        "set_fake_passwords",
        "set_fake_emails",
        "sqldsn",
        "create_command",
        "create_jobs",
        "create_template_tags",
        "delete_squashed_migrations",
        "sync_s3",
        "mail_debug",
        "notes",
    }
)


@dataclass(frozen=True)
class JobsSettings(AppSettings):
    SETTING = "CONSOLE_JOBS"
    CHECK_ID = "console.jobs"

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    deny: frozenset[str] = frozenset()
    classes: dict[str, str] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)
    timeouts: dict[str, float] = field(default_factory=dict)
    default_timeout: float = field(default=3600, metadata=POSITIVE)
    exclusive: frozenset[str] = frozenset()
    approvals: frozenset[str] = frozenset()
    dry_run: dict[str, str] = field(default_factory=dict)
    heartbeat_seconds: float = field(default=2, metadata=POSITIVE)
    lost_after_seconds: float = field(default=60, metadata=POSITIVE)
    stop_grace_seconds: float = field(default=5, metadata=POSITIVE)
    flush_seconds: float = field(default=0.2, metadata=POSITIVE)
    flush_bytes: int = field(default=65536, metadata=POSITIVE)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    missed_after_seconds: float = field(default=300, metadata=POSITIVE)
    keep_output_lines: tuple[int, ...] = (10000, 10000)
    keep_output_lines_by_command: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Kept for ever unless a site opts in: a site upgrading must not start deleting its run history unasked.
    keep_runs_days: float = field(default=0, metadata=AT_LEAST_ZERO)
    keep_runs_days_by_command: dict[str, float] = field(default_factory=dict)
    prune_batch: int = field(default=1000, metadata=POSITIVE)
    prune_pause_seconds: float = field(default=0.05, metadata=AT_LEAST_ZERO)
    warm_start: bool = True
    fresh_start: frozenset[str] = frozenset()

    @property
    def denied(self) -> frozenset[str]:
        """The built-in deny list and the site's additions: settings extend it, never shrink it."""
        return DENY | self.deny

    def access_for(self, command: str) -> Access | None:
        """The site's own verdict on ``command``, for any arguments; None when the site says nothing."""
        if command in self.permissions:
            return Access(JobClass.CONSOLE, self.permissions[command])
        return Access.parse(self.classes[command]) if command in self.classes else None

    def timeout_for(self, command: str) -> float:
        return float(self.timeouts.get(command, self.default_timeout))

    def output_kept_for(self, command: str) -> tuple[int, int]:
        """(first, last) lines of a finished run's output kept; the lines between are cut."""
        pair = self.keep_output_lines_by_command.get(command, self.keep_output_lines)
        # A malformed pair fails the system check; until it is fixed, nothing is cut.
        return (pair[0], pair[1]) if len(pair) == 2 and min(pair) >= 0 else (2**62, 2**62)

    def starts_warm(self, command: str) -> bool:
        """Whether a run of ``command`` is forked from the worker's warm runner rather than a fresh manage.py."""
        return self.warm_start and "*" not in self.fresh_start and command not in self.fresh_start

    def is_exclusive(self, command: str) -> bool:
        return "*" in self.exclusive or command in self.exclusive

    def needs_approval(self, command: str, access: Access) -> bool:
        """Whether a run of ``command`` filed under ``access`` waits for a second user's approval."""
        return bool({"*", command, access.job_class.value} & self.approvals)

    def problems(self) -> list[str]:
        found = []
        if not all(perm.count(".") == 1 for perm in self.permissions.values()):
            found.append('PERMISSIONS must map command names to "app_label.codename".')
        classes = [c for c in JobClass.values if c != JobClass.CONSOLE]
        if not all(value in classes for value in self.classes.values()):
            found.append(f"CLASSES must map command names to one of: {', '.join(classes)}.")
        if both := sorted(set(self.classes) & set(self.permissions)):
            found.append(f"{', '.join(both)} cannot be in both CLASSES and PERMISSIONS.")
        if not all(option.startswith("-") for option in self.dry_run.values()):
            found.append('DRY_RUN must map command names to an option such as "--simulate".')
        if not all(seconds > 0 for seconds in self.timeouts.values()):
            found.append("TIMEOUTS must map command names to a positive number of seconds.")
        if self.lost_after_seconds <= 2 * self.heartbeat_seconds:
            found.append("LOST_AFTER_SECONDS must exceed twice HEARTBEAT_SECONDS, or live jobs are reaped.")
        limits = [self.keep_output_lines, *self.keep_output_lines_by_command.values()]
        if not all(len(pair) == 2 and min(pair) >= 0 for pair in limits):
            found.append(
                "KEEP_OUTPUT_LINES (and each of KEEP_OUTPUT_LINES_BY_COMMAND) must be [first, last] lines, >= 0."
            )
        if not all(days >= 0 for days in self.keep_runs_days_by_command.values()):
            found.append("KEEP_RUNS_DAYS_BY_COMMAND must map command names to days, >= 0 (0: keep for ever).")
        found.extend(
            f"SCHEDULES[{name!r}]: {problem}"
            for name, spec in self.schedules.items()
            for problem in schedule_problems(spec)
        )
        return found


SCHEDULE_KEYS = {"command", "args", "cron", "interval", "timezone", "overlap", "missed", "enabled", "reason"}


def schedule_problems(spec: dict[str, Any]) -> list[str]:
    """What is wrong with one schedule of ``SCHEDULES`` (the command itself is checked when it is synced)."""
    found = []
    if unknown := sorted(set(spec) - SCHEDULE_KEYS, key=str):
        found.append(f"unknown keys {', '.join(map(str, unknown))}; known: {', '.join(sorted(SCHEDULE_KEYS))}.")
    if not isinstance(spec.get("command"), str) or not spec["command"]:
        found.append('"command" must name a management command.')
    args = spec.get("args", [])
    if not isinstance(args, list) or not all(isinstance(arg, str) for arg in args):
        found.append('"args" must be a list of strings.')
    cron, interval = spec.get("cron"), spec.get("interval")
    if (cron is None) == (interval is None):
        found.append('give either "cron" or "interval" (seconds).')
    elif cron is not None:
        try:
            check_cron(cron if isinstance(cron, str) else "")
        except ValueError as exc:
            found.append(f'"cron": {exc}')
    elif isinstance(interval, bool) or not isinstance(interval, int) or not 0 < interval <= MAX_INTERVAL_SECONDS:
        found.append(f'"interval" must be a whole number of seconds from 1 to {MAX_INTERVAL_SECONDS}.')
    try:
        zone(spec.get("timezone", "UTC") if isinstance(spec.get("timezone", "UTC"), str) else "")
    except ValueError as exc:
        found.append(f'"timezone": {exc}')
    if spec.get("overlap", "skip") not in ("skip", "queue"):
        found.append('"overlap" must be "skip" or "queue".')
    if spec.get("missed", "run-once") not in ("run-once", "skip"):
        found.append('"missed" must be "run-once" or "skip".')
    if not isinstance(spec.get("enabled", True), bool) or not isinstance(spec.get("reason", ""), str):
        found.append('"enabled" must be True or False and "reason" a string.')
    return found


jobs_settings = JobsSettings.load


@register()
def check_jobs_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return JobsSettings.check()
