"""Access control for every console URL: active staff only, then a permission per action."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

from console.core.http import ConsoleRequest

View = Callable[..., HttpResponse]


def staff_required(view: Callable[..., HttpResponse]) -> View:
    """Anonymous users go to the login page; signed-in users who are not active staff get a 403.

    Fragment URLs use this too: an htmx request from a session that expired gets ``HX-Redirect`` to the
    login page rather than a login form swapped into the middle of a table.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            response = redirect_to_login(request.get_full_path())
            if getattr(request, "htmx", False):
                response["HX-Redirect"] = response["Location"]
            return response
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The console is for staff only.")
        return view(cast(ConsoleRequest, request), *args, **kwargs)

    return wrapper


def require_perm(request: ConsoleRequest, perm: str) -> None:
    """Raise 403 unless the user holds ``perm``; views call this before any state change."""
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"You need the “{perm}” permission for this.")
