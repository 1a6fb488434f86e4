"""Who may read the machine endpoints (/metrics, the feed): a bearer token, or a staff session."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponse


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def token_or_staff(setting: Callable[[], str]) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """401 without credentials, 403 with a wrong token or a non-staff session; otherwise the view runs."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            token = _bearer(request)
            expected = setting()
            if token is not None:
                if expected and hmac.compare_digest(token.encode(), expected.encode()):
                    return view(request, *args, **kwargs)
                return HttpResponse("Invalid token.\n", status=403, content_type="text/plain")
            user = request.user
            if user.is_authenticated:
                if user.is_active and user.is_staff:
                    return view(request, *args, **kwargs)
                return HttpResponse("Staff only.\n", status=403, content_type="text/plain")
            response = HttpResponse("Authentication required.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="console"'
            return response

        return wrapper

    return decorator
