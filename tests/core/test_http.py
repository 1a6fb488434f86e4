"""The one htmx response helper: whole page or its piece, stop polling, client redirect, all varying on htmx."""

from __future__ import annotations

from django.http import HttpRequest
from django.test import RequestFactory
from django_htmx.middleware import HtmxDetails

from console.core.http import client_redirect, page, piece

CONTEXT = {"inline": True, "worker": None, "tick": None, "stale_after": 1, "tick_stale_after": 1}


def request(**headers: str) -> HttpRequest:
    made = RequestFactory().get("/", headers=headers)
    made.htmx = HtmxDetails(made)  # type: ignore[attr-defined]  # what django-htmx's middleware adds
    return made


def test_a_plain_request_gets_the_whole_page() -> None:
    response = page(request(), "core/dashboard.html", CONTEXT, fragment="worker")
    assert b"<html" in response.content and response["Vary"] == "HX-Request"


def test_htmx_gets_the_piece_it_asked_for_but_boosted_navigation_and_history_restores_get_pages() -> None:
    fragment = page(request(HX_Request="true"), "core/dashboard.html", CONTEXT, fragment="worker")
    assert b'id="worker-status"' in fragment.content and b"<html" not in fragment.content
    for headers in (
        {"HX_Request": "true", "HX_Boosted": "true"},
        {"HX_Request": "true", "HX_History_Restore_Request": "true"},
    ):
        assert b"<html" in page(request(**headers), "core/dashboard.html", CONTEXT, fragment="worker").content


def test_the_final_piece_stops_polling() -> None:
    response = piece(request(HX_Request="true"), "core/dashboard.html#worker", CONTEXT, stop_polling=True)
    assert response.status_code == 286 and response["Vary"] == "HX-Request"


def test_a_client_redirect_is_a_2xx_that_htmx_follows_as_a_whole_page() -> None:
    response = client_redirect("/accounts/login/?next=/jobs/")
    assert response.status_code == 200 and response["HX-Redirect"] == "/accounts/login/?next=/jobs/"
