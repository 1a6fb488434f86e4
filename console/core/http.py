"""Request typing and the small htmx helpers every console view uses."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse
from django_htmx.middleware import HtmxDetails

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class ConsoleRequest(HttpRequest):
    """What a console view receives: the staff guard has run, so ``user`` is a real, active staff user."""

    user: User  # narrowed from AbstractBaseUser | AnonymousUser by staff_required
    htmx: HtmxDetails


def wants_fragment(request: HttpRequest) -> bool:
    """True when htmx asked for a piece of the page, not a boosted navigation or a history restore."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    return bool(htmx) and htmx is not None and not htmx.boosted and not htmx.history_restore_request


def vary_on_htmx(response: HttpResponse) -> HttpResponse:
    from django.utils.cache import patch_vary_headers

    patch_vary_headers(response, ("HX-Request",))
    return response
