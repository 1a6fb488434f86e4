"""Request typing and the one htmx response helper every console view uses.

A console page is one template with its swappable pieces as named partials (``{% partialdef name inline %}``).
``page()`` answers a plain request (a link, a form without JavaScript, a boosted navigation, a history
restore) with the whole page and an htmx request with the piece it asked for; ``piece()`` answers only with
a piece (polling endpoints), optionally telling htmx to stop polling; ``client_redirect()`` sends the browser
elsewhere as a whole page. Every answer varies on ``HX-Request``, so a cache never serves one for the other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template.loader import render_to_string
from django.utils.cache import patch_vary_headers
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling
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


def _varying(response: HttpResponse) -> HttpResponse:
    patch_vary_headers(response, ("HX-Request",))
    return response


def page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any],
    *,
    fragment: str,
    stop_polling: bool = False,
    status: int = 200,
) -> HttpResponse:
    """The whole ``template``, or its partial ``fragment`` when htmx asked for a piece of the page.

    ``fragment`` names a partial of ``template``, or one of a shared template it includes
    (``"core/_filtered_table.html#table-region"``). ``stop_polling`` (the piece that shows a final state)
    answers the piece with htmx's stop-polling status.
    """
    if wants_fragment(request):
        partial = fragment if "#" in fragment else f"{template}#{fragment}"
        return piece(request, partial, context, stop_polling=stop_polling, status=status)
    return _varying(render(request, template, context, status=status))


def piece(
    request: HttpRequest, partial: str, context: dict[str, Any], *, stop_polling: bool = False, status: int = 200
) -> HttpResponse:
    """Only the named partial (``"app/page.html#name"``), for htmx; with ``stop_polling``, htmx polls no more."""
    content = render_to_string(partial, context, request=request)
    response = HttpResponseStopPolling(content) if stop_polling else HttpResponse(content, status=status)
    return _varying(response)


def client_redirect(url: str) -> HttpResponse:
    """Send the browser to ``url`` as a whole page: a 2xx that htmx acts on (a 3xx the browser follows itself)."""
    return _varying(HttpResponseClientRedirect(url))
