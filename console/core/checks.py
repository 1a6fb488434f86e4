from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning, register


@register()
def check_tasks(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    huey = getattr(settings, "HUEY", None)
    if isinstance(huey, dict) and huey.get("immediate", settings.DEBUG) and settings.CONSOLE_TASKS != "immediate":
        messages.append(
            Error(
                "Huey would run tasks inline, blocking requests.",
                hint="Set HUEY['immediate'] = False; ask for inline work with CONSOLE_TASKS=immediate.",
                id="console.core.E001",
            )
        )
    backend = settings.TASKS.get("default", {}).get("BACKEND", "")
    if settings.CONSOLE_TASKS == "immediate" and "Immediate" not in backend:
        messages.append(
            Warning("CONSOLE_TASKS=immediate but the default task backend is not inline.", id="console.core.W001")
        )
    return messages
