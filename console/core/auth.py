"""Access control for every console URL: active staff only, then a permission per action."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.middleware import HtmxDetails

from console.core.http import ConsoleRequest, client_redirect, wants_fragment

View = Callable[..., HttpResponse]


def _login_redirect(request: HttpRequest) -> HttpResponse:
    """Send a signed-out visitor to the login page, to come back where they were.

    htmx follows a 302 inside its XMLHttpRequest and would swap the login form into the fragment's target
    (the middle of a table, a job's live output). An htmx request gets a 2xx with ``HX-Redirect`` instead,
    which htmx answers by loading the login page as a whole page. Its ``next`` is the page the user is on
    (``HX-Current-URL``), not the fragment's URL, which is no page to come back to.
    """
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if not htmx:
        return redirect_to_login(request.get_full_path())
    # A boosted link or a history restore asked for a whole page: that page is where to come back to.
    back = htmx.current_url_abs_path if wants_fragment(request) else request.get_full_path()
    if back is None:
        # The page is on another origin (or the header is missing): never send anyone there after login.
        return client_redirect(resolve_url(settings.LOGIN_URL))
    return client_redirect(redirect_to_login(back).url)


def staff_required(view: Callable[..., HttpResponse]) -> View:
    """Anonymous users go to the login page (see ``_login_redirect``); signed-in users who are not active
    staff get a 403. Fragment URLs use this too."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        user = request.user
        if not user.is_authenticated:
            return _login_redirect(request)
        if not (user.is_active and user.is_staff):
            raise PermissionDenied("The console is for staff only.")
        return view(cast(ConsoleRequest, request), *args, **kwargs)

    return wrapper


def require_perm(request: ConsoleRequest, perm: str) -> None:
    """Raise 403 unless the user holds ``perm``; views call this before any state change."""
    if not request.user.has_perm(perm):
        raise PermissionDenied(f"You need the “{perm}” permission for this.")
