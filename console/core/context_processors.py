from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from console.core.registry import registry


def console(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return {"console_nav": [], "console_banners": []}
    banners: list[str] = []
    if settings.CONSOLE_TASKS == "immediate":
        banners.append("Tasks run inline (CONSOLE_TASKS=immediate): background work happens inside your request.")
    for banner in registry.banners:
        banners.extend(banner(request))
    return {"console_nav": registry.nav, "console_banners": banners}
