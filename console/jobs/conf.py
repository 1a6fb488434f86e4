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
        "HEARTBEAT_SECONDS": 2,       # how often a running job proves it is alive
        "LOST_AFTER_SECONDS": 60,     # a running job silent for this long is lost
        "STOP_GRACE_SECONDS": 5,      # SIGTERM, then SIGKILL after this long
        "FLUSH_SECONDS": 0.2,         # output reaches the database at least this often ...
        "FLUSH_BYTES": 65536,         # ... or as soon as this much is waiting
        "WARM_START": True,           # fork runs from a preloaded runner; False: a fresh manage.py for each
        "FRESH_START": [],            # commands that always start in a fresh manage.py ("*" for every command)
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, register

from console.core.conf import POSITIVE, AppSettings
from console.jobs.access import Access, JobClass

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
    heartbeat_seconds: float = field(default=2, metadata=POSITIVE)
    lost_after_seconds: float = field(default=60, metadata=POSITIVE)
    stop_grace_seconds: float = field(default=5, metadata=POSITIVE)
    flush_seconds: float = field(default=0.2, metadata=POSITIVE)
    flush_bytes: int = field(default=65536, metadata=POSITIVE)
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

    def starts_warm(self, command: str) -> bool:
        """Whether a run of ``command`` is forked from the worker's warm runner rather than a fresh manage.py."""
        return self.warm_start and "*" not in self.fresh_start and command not in self.fresh_start

    def is_exclusive(self, command: str) -> bool:
        return "*" in self.exclusive or command in self.exclusive

    def problems(self) -> list[str]:
        found = []
        if not all(perm.count(".") == 1 for perm in self.permissions.values()):
            found.append('PERMISSIONS must map command names to "app_label.codename".')
        classes = [c for c in JobClass.values if c != JobClass.CONSOLE]
        if not all(value in classes for value in self.classes.values()):
            found.append(f"CLASSES must map command names to one of: {', '.join(classes)}.")
        if both := sorted(set(self.classes) & set(self.permissions)):
            found.append(f"{', '.join(both)} cannot be in both CLASSES and PERMISSIONS.")
        if not all(seconds > 0 for seconds in self.timeouts.values()):
            found.append("TIMEOUTS must map command names to a positive number of seconds.")
        if self.lost_after_seconds <= 2 * self.heartbeat_seconds:
            found.append("LOST_AFTER_SECONDS must exceed twice HEARTBEAT_SECONDS, or live jobs are reaped.")
        return found


jobs_settings = JobsSettings.load


@register()
def check_jobs_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return JobsSettings.check()
