"""Which management commands the console offers, to whom."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from django.apps import apps
from django.contrib.auth.models import AnonymousUser, PermissionsMixin
from django.core.management import get_commands, load_command_class
from django.core.management.base import BaseCommand

from console.jobs.conf import JobsSettings, jobs_settings


class UnknownCommand(LookupError):
    """No installed app provides a command of this name."""


@dataclass(frozen=True)
class CommandInfo:
    name: str
    app: str  # the module path get_commands() reports: "django.core", "django.contrib.auth", ...
    permission: str
    destructive: bool

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
    return CommandInfo(name=name, app=app, permission=conf.permission_for(name), destructive=name in conf.destructive)


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


def may_run(user: PermissionsMixin | AnonymousUser, info: CommandInfo) -> bool:
    return refusal(info) is None and user.has_perm(info.permission)


def commands_for(user: PermissionsMixin | AnonymousUser, *, query: str = "") -> list[CommandInfo]:
    """The commands ``user`` may run, sorted by app then name, optionally narrowed by a search."""
    conf = jobs_settings()
    found = []
    needle = query.strip().lower()
    for name in get_commands():
        info = lookup(name, conf)
        if refusal(info, conf) is not None or not user.has_perm(info.permission):
            continue
        if needle and not any(needle in text.lower() for text in (name, info.app_label, info.help)):
            continue
        found.append(info)
    return sorted(found, key=lambda info: (info.app_verbose_name.lower(), info.name))
