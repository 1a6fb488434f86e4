"""Which management commands the console offers, to whom."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.apps import apps
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand

from console.jobs.access import BUILT_IN, BY_OPTIONS, UNKNOWN, Access, JobClass, lacking
from console.jobs.conf import JobsSettings, jobs_settings
from console.jobs.introspect import validate_argv


class UnknownCommand(LookupError):
    """No installed app provides a command of this name."""


@dataclass(frozen=True)
class CommandInfo:
    name: str
    app: str  # the module path get_commands() reports: "django.core", "django.contrib.auth", ...
    override: Access | None = None  # CONSOLE_JOBS["CLASSES"] or ["PERMISSIONS"]: wins over everything

    @property
    def app_label(self) -> str:
        if self.app == "django.core":
            return "django"
        for config in apps.get_app_configs():
            if config.name == self.app:
                return config.label
        return self.app.rsplit(".", 1)[-1]

    @property
    def app_verbose_name(self) -> str:
        if self.app == "django.core":
            return "Django"
        for config in apps.get_app_configs():
            if config.name == self.app:
                return str(config.verbose_name)
        return self.app

    def load(self) -> BaseCommand:
        return load_command_class(self.app, self.name)

    @cached_property
    def access(self) -> Access:
        """The class of the command's name: what the catalog and the form page need. Arguments may raise it."""
        return self.access_with(None)

    def access_with(self, options: dict[str, Any] | None) -> Access:
        """The class of a run with these parsed ``options``.

        The site's settings win; then what the command declares (``console_job_class``, and
        ``console_job_class_for(options)`` for a verdict on its arguments); then the built-in table of Django's
        and django-extensions' commands; anything else is data-changing.
        """
        if self.override is not None:
            return self.override
        command = self._command
        judge = getattr(command, "console_job_class_for", None)
        if options is not None and callable(judge):
            try:
                verdict = judge(options)
            except Exception:  # a judge that fails on these arguments cannot vouch for anything less
                return Access(JobClass.DESTRUCTIVE)
            return Access.parse(verdict) or Access(UNKNOWN)
        declared = getattr(command, "console_job_class", None)
        if declared is not None:
            return Access.parse(declared) or Access(UNKNOWN)
        built_in = BUILT_IN.get(self.name, UNKNOWN)
        raise_for = BY_OPTIONS.get(self.name)
        raised = raise_for(options) if raise_for is not None and options is not None else None
        return Access(raised or built_in)

    @cached_property
    def _command(self) -> BaseCommand | None:
        try:
            return self.load()
        except Exception:  # judged by its name alone; the form page says why it cannot be loaded
            return None

    @cached_property
    def help(self) -> str:
        try:
            return str(self.load().help or "").strip()
        except Exception as exc:  # a command that cannot even be imported is still listed, with the reason
            return f"(cannot be loaded: {exc.__class__.__name__}: {exc})"


def lookup(name: str, conf: JobsSettings | None = None) -> CommandInfo:
    """The command called ``name``, allowed or not; ``UnknownCommand`` when no app has it."""
    conf = conf or jobs_settings()
    app = get_commands().get(name)
    if app is None:
        raise UnknownCommand(name)
    return CommandInfo(name=name, app=app, override=conf.access_for(name))


def access_for_argv(info: CommandInfo, argv: list[str]) -> Access:
    """The class of a run of ``info`` with ``argv``, judged on what the command's own parser makes of it.

    ``CommandError`` when the parser refuses ``argv`` (a re-run of arguments the command no longer takes).
    """
    if info.override is not None:
        return info.override
    return info.access_with(vars(validate_argv(info.load(), info.name, argv)))


def refusal(info: CommandInfo, conf: JobsSettings | None = None) -> str | None:
    """Why the console never runs ``info`` (deny list or settings), or None when it may."""
    conf = conf or jobs_settings()
    names = {info.name, info.app, info.app_label}
    if info.name in conf.denied:
        return "on the deny list (interactive, server, shell or destructive)"
    if names & set(conf.exclude):
        return "excluded by CONSOLE_JOBS['exclude']"
    if conf.include and not names & set(conf.include):
        return "not included by CONSOLE_JOBS['include']"
    return None


def denial(user: PermissionsMixin | AnonymousUser, info: CommandInfo, access: Access | None = None) -> str | None:
    """Why ``user`` may not run ``info`` (with arguments of class ``access``), or None when they may."""
    why = refusal(info)
    if why is not None:
        return why
    missing = (access or info.access).missing(user)
    return lacking(missing) if missing else None


def commands_for(user: PermissionsMixin | AnonymousUser, *, query: str = "") -> list[CommandInfo]:
    """The commands ``user`` may run, sorted by app then name, optionally narrowed by a search."""
    conf = jobs_settings()
    found = []
    needle = query.strip().lower()
    for name in get_commands():
        info = lookup(name, conf)
        if refusal(info, conf) is not None or info.access.missing(user):
            continue
        if needle and not any(needle in text.lower() for text in (name, info.app_label, info.help)):
            continue
        found.append(info)
    return sorted(found, key=lambda info: (info.app_verbose_name.lower(), info.name))
