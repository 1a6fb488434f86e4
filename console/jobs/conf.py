"""The jobs app's settings: ``CONSOLE_JOBS`` in the site's settings, every key optional.

::

    CONSOLE_JOBS = {
        "include": [],                # command names or app labels; empty means every command
        "exclude": [],                # command names or app labels, on top of the built-in deny list
        "deny": [],                   # more command names that can never run, whatever else says
        "permissions": {},            # command -> "app.codename" needed to run it (default jobs.run_command)
        "destructive": ["migrate"],   # commands whose form asks to type the command name to confirm
        "timeouts": {},               # command -> seconds; default_timeout for the rest
        "default_timeout": 3600,
        "exclusive": [],              # commands that may not run twice at once ("*" for every command)
        "heartbeat_seconds": 2,       # how often a running job proves it is alive
        "lost_after_seconds": 60,     # a running job silent for this long is lost
        "stop_grace_seconds": 5,      # SIGTERM, then SIGKILL after this long
        "flush_seconds": 0.2,         # output reaches the database at least this often ...
        "flush_bytes": 65536,         # ... or as soon as this much is waiting
    }
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

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
class JobsSettings:
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    deny: frozenset[str] = DENY
    permissions: dict[str, str] = field(default_factory=dict)
    destructive: frozenset[str] = frozenset({"migrate"})
    timeouts: dict[str, float] = field(default_factory=dict)
    default_timeout: float = 3600
    exclusive: frozenset[str] = frozenset()
    heartbeat_seconds: float = 2
    lost_after_seconds: float = 60
    stop_grace_seconds: float = 5
    flush_seconds: float = 0.2
    flush_bytes: int = 65536

    def permission_for(self, command: str) -> str:
        return self.permissions.get(command, DEFAULT_PERMISSION)

    def timeout_for(self, command: str) -> float:
        return float(self.timeouts.get(command, self.default_timeout))

    def is_exclusive(self, command: str) -> bool:
        return "*" in self.exclusive or command in self.exclusive


def _raw() -> dict[str, Any]:
    raw = getattr(settings, "CONSOLE_JOBS", {})
    return raw if isinstance(raw, dict) else {}


def jobs_settings() -> JobsSettings:
    """Read on every call: tests and sites may change ``CONSOLE_JOBS`` at run time."""
    raw = _raw()
    defaults = JobsSettings()
    return JobsSettings(
        include=tuple(raw.get("include", ())),
        exclude=tuple(raw.get("exclude", ())),
        deny=DENY | frozenset(raw.get("deny", ())),
        permissions=dict(raw.get("permissions", {})),
        destructive=frozenset(raw.get("destructive", defaults.destructive)),
        timeouts={name: float(value) for name, value in dict(raw.get("timeouts", {})).items()},
        default_timeout=float(raw.get("default_timeout", defaults.default_timeout)),
        exclusive=frozenset(raw.get("exclusive", ())),
        heartbeat_seconds=float(raw.get("heartbeat_seconds", defaults.heartbeat_seconds)),
        lost_after_seconds=float(raw.get("lost_after_seconds", defaults.lost_after_seconds)),
        stop_grace_seconds=float(raw.get("stop_grace_seconds", defaults.stop_grace_seconds)),
        flush_seconds=float(raw.get("flush_seconds", defaults.flush_seconds)),
        flush_bytes=int(raw.get("flush_bytes", defaults.flush_bytes)),
    )


_LISTS = ("include", "exclude", "deny", "destructive", "exclusive")
_NUMBERS = (
    "default_timeout",
    "heartbeat_seconds",
    "lost_after_seconds",
    "stop_grace_seconds",
    "flush_seconds",
    "flush_bytes",
)
_KNOWN = {*_LISTS, *_NUMBERS, "permissions", "timeouts"}


@register()
def check_jobs_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    raw = getattr(settings, "CONSOLE_JOBS", {})
    if not isinstance(raw, dict):
        return [Error("CONSOLE_JOBS must be a dict.", id="console.jobs.E001")]
    errors: list[CheckMessage] = []
    for key in sorted(set(raw) - _KNOWN):
        errors.append(
            Error(
                f"CONSOLE_JOBS has an unknown key {key!r}.",
                hint=f"Known: {', '.join(sorted(_KNOWN))}.",
                id="console.jobs.E002",
            )
        )
    for key in _LISTS:
        value = raw.get(key, ())
        if isinstance(value, str) or not all(isinstance(item, str) for item in value):
            errors.append(Error(f"CONSOLE_JOBS[{key!r}] must be a list of names.", id="console.jobs.E003"))
    for key in _NUMBERS:
        value = raw.get(key, 1)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            errors.append(Error(f"CONSOLE_JOBS[{key!r}] must be a positive number.", id="console.jobs.E004"))
    perms = raw.get("permissions", {})
    if not isinstance(perms, dict) or not all(isinstance(p, str) and p.count(".") == 1 for p in perms.values()):
        errors.append(
            Error('CONSOLE_JOBS["permissions"] must map command names to "app_label.codename".', id="console.jobs.E005")
        )
    timeouts = raw.get("timeouts", {})
    if not isinstance(timeouts, dict) or not all(
        isinstance(t, int | float) and not isinstance(t, bool) and t > 0 for t in timeouts.values()
    ):
        errors.append(Error('CONSOLE_JOBS["timeouts"] must map command names to seconds.', id="console.jobs.E006"))
    heartbeat = raw.get("heartbeat_seconds", JobsSettings.heartbeat_seconds)
    lost_after = raw.get("lost_after_seconds", JobsSettings.lost_after_seconds)
    if isinstance(heartbeat, int | float) and isinstance(lost_after, int | float) and lost_after <= 2 * heartbeat:
        errors.append(
            Error(
                "CONSOLE_JOBS lost_after_seconds must exceed twice heartbeat_seconds, or live jobs are reaped.",
                id="console.jobs.E007",
            )
        )
    return errors
