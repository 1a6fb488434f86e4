"""The jobs app's settings: ``CONSOLE_JOBS`` in the site's settings, every key optional.

::

    CONSOLE_JOBS = {
        "INCLUDE": [],                # command names or app labels; empty means every command
        "EXCLUDE": [],                # command names or app labels, on top of the built-in deny list
        "DENY": [],                   # more command names that can never run, whatever else says
        "PERMISSIONS": {},            # command -> "app.codename" needed to run it (default jobs.run_command)
        "DESTRUCTIVE": ["migrate"],   # commands whose form asks to type the command name to confirm
        "TIMEOUTS": {},               # command -> seconds; DEFAULT_TIMEOUT for the rest
        "DEFAULT_TIMEOUT": 3600,
        "EXCLUSIVE": [],              # commands that may not run twice at once ("*" for every command)
        "HEARTBEAT_SECONDS": 2,       # how often a running job proves it is alive
        "LOST_AFTER_SECONDS": 60,     # a running job silent for this long is lost
        "STOP_GRACE_SECONDS": 5,      # SIGTERM, then SIGKILL after this long
        "FLUSH_SECONDS": 0.2,         # output reaches the database at least this often ...
        "FLUSH_BYTES": 65536,         # ... or as soon as this much is waiting
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.checks import CheckMessage, register

from console.core.conf import POSITIVE, AppSettings

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

DEFAULT_PERMISSION = "jobs.run_command"


@dataclass(frozen=True)
class JobsSettings(AppSettings):
    SETTING = "CONSOLE_JOBS"
    CHECK_ID = "console.jobs"

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    deny: frozenset[str] = frozenset()
    permissions: dict[str, str] = field(default_factory=dict)
    destructive: frozenset[str] = frozenset({"migrate"})
    timeouts: dict[str, float] = field(default_factory=dict)
    default_timeout: float = field(default=3600, metadata=POSITIVE)
    exclusive: frozenset[str] = frozenset()
    heartbeat_seconds: float = field(default=2, metadata=POSITIVE)
    lost_after_seconds: float = field(default=60, metadata=POSITIVE)
    stop_grace_seconds: float = field(default=5, metadata=POSITIVE)
    flush_seconds: float = field(default=0.2, metadata=POSITIVE)
    flush_bytes: int = field(default=65536, metadata=POSITIVE)

    @property
    def denied(self) -> frozenset[str]:
        """The built-in deny list and the site's additions: settings extend it, never shrink it."""
        return DENY | self.deny

    def permission_for(self, command: str) -> str:
        return self.permissions.get(command, DEFAULT_PERMISSION)

    def timeout_for(self, command: str) -> float:
        return float(self.timeouts.get(command, self.default_timeout))

    def is_exclusive(self, command: str) -> bool:
        return "*" in self.exclusive or command in self.exclusive

    def problems(self) -> list[str]:
        found = []
        if not all(perm.count(".") == 1 for perm in self.permissions.values()):
            found.append('PERMISSIONS must map command names to "app_label.codename".')
        if not all(seconds > 0 for seconds in self.timeouts.values()):
            found.append("TIMEOUTS must map command names to a positive number of seconds.")
        if self.lost_after_seconds <= 2 * self.heartbeat_seconds:
            found.append("LOST_AFTER_SECONDS must exceed twice HEARTBEAT_SECONDS, or live jobs are reaped.")
        return found


jobs_settings = JobsSettings.load


@register()
def check_jobs_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return JobsSettings.check()
