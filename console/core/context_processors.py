from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from console.core import backends
from console.core.registry import registry


def console(request: HttpRequest) -> dict[str, Any]:
    """The nav and banners of the console's base template, for signed-in staff only."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {"console_nav": [], "console_banners": []}
    banners: list[str] = []
    if backends.runs_inline():
        banners.append(
            "Tasks run inline (ImmediateBackend): background work happens inside your request, which waits for it."
        )
    elif backends.never_runs():
        banners.append("The task backend never runs tasks (DummyBackend): jobs and messages wait for ever.")
    for banner in registry.banners:
        banners.extend(banner(request))
    return {"console_nav": registry.nav, "console_banners": banners}
