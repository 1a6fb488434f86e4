"""System checks of the console shell: its settings, and a task backend that would surprise a site."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register

from console.core import backends
from console.core.conf import CoreSettings


@register()
def check_settings(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    return CoreSettings.check()


@register()
def check_tasks(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        uses_huey, never_runs = backends.uses_huey(), backends.never_runs()
    except Exception as exc:  # a TASKS setting Django cannot build a backend from
        return [Error(f"The default task backend cannot be loaded: {exc}", hint="Fix TASKS.", id="console.core.E010")]
    # djhuey's own setting: unless told otherwise it runs every task inline whenever DEBUG is on.
    huey = getattr(settings, "HUEY", None)
    if uses_huey and isinstance(huey, dict) and huey.get("immediate", settings.DEBUG):
        messages.append(
            Error(
                "Huey would run tasks inline, blocking requests.",
                hint="Set HUEY['immediate'] = False; for inline work use Django's ImmediateBackend in TASKS.",
                id="console.core.E011",
            )
        )
    if never_runs:
        messages.append(
            Warning(
                "The default task backend (DummyBackend) never runs tasks: jobs and messages would wait for ever.",
                hint="Use a backend that runs tasks, for example ImmediateBackend (inline) or a queue's backend.",
                id="console.core.W010",
            )
        )
    return messages
