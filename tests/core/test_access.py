"""Every console URL denies anonymous users (login redirect) and signed-in non-staff users (403)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

# Public by design: Django's own auth pages, the admin (its own login), health, token-protected feeds and the
# signed unsubscribe link recipients follow.
PUBLIC_PREFIXES = ("accounts/", "admin/", "healthz")
PUBLIC_NAMES = {"metrics", "feed", "inbound", "unsubscribe"}
SAMPLE_ARGS = {
    "int": "1",
    "str": "sample",
    "text": "sample",
    "slug": "sample",
    "path": "sample/path",
    "uuid": "00000000-0000-0000-0000-000000000001",
}


def console_paths() -> Iterator[tuple[str, str]]:
    def walk(patterns: list[URLPattern | URLResolver], prefix: str) -> Iterator[tuple[str, str]]:
        for entry in patterns:
            route = prefix + str(entry.pattern)
            if isinstance(entry, URLResolver):
                yield from walk(entry.url_patterns, route)
            else:
                yield route, entry.name or ""

    for route, name in walk(get_resolver("console.urls").url_patterns, ""):
        if route.startswith(PUBLIC_PREFIXES) or name in PUBLIC_NAMES:
            continue
        path = route
        for converter, sample in SAMPLE_ARGS.items():
            while f"<{converter}:" in path:
                start = path.index(f"<{converter}:")
                path = path[:start] + sample + path[path.index(">", start) + 1 :]
        assert "<" not in path, f"crawl does not know how to fill {route}"
        yield "/" + path.lstrip("^").rstrip("$"), name


PATHS = sorted(set(console_paths()))


def test_it_crawls_a_meaningful_number_of_urls() -> None:
    assert len(PATHS) >= 8, PATHS


def test_it_crawls_the_demo_apps_pages_too() -> None:
    demo = {path for path, name in PATHS if path.startswith("/read-models/")}
    assert demo == {
        "/read-models/accounts/",
        "/read-models/accounts/sample/",
        "/read-models/accounts/sample/act/",
        "/read-models/activity/",
    }


@pytest.mark.parametrize(("path", "name"), PATHS)
def test_it_sends_anonymous_users_to_login(client: Client, db: None, path: str, name: str) -> None:
    for method in (client.get, client.post):
        response = method(path)
        assert response.status_code == 302, (path, response.status_code)
        assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize(("path", "name"), PATHS)
def test_it_forbids_signed_in_non_staff(client: Client, outsider: User, path: str, name: str) -> None:
    client.force_login(outsider)
    for method in (client.get, client.post):
        assert method(path).status_code == 403, path
        assert method(path, headers={"HX-Request": "true"}).status_code == 403, path


@pytest.mark.parametrize(("path", "name"), PATHS)
def test_it_forbids_inactive_staff(client: Client, staff: User, path: str, name: str) -> None:
    client.force_login(staff)
    staff.is_active = False
    staff.save()
    assert client.get(path).status_code in (302, 403)


def test_it_sends_an_expired_htmx_session_to_login_from_the_page_it_is_on(client: Client, db: None) -> None:
    response = client.get(
        "/jobs/runs/7/output?after=0",
        headers={"HX-Request": "true", "HX-Current-URL": "http://testserver/jobs/runs/7/?tab=output"},
    )
    # A 2xx: htmx follows a 302 itself and would swap the login form into the fragment's target.
    assert response.status_code == 200
    assert "Location" not in response
    assert response["HX-Redirect"] == "/accounts/login/?next=/jobs/runs/7/%3Ftab%3Doutput"


def test_it_never_sends_an_expired_htmx_session_back_to_another_origin(client: Client, db: None) -> None:
    response = client.get(
        "/jobs/runs/7/output", headers={"HX-Request": "true", "HX-Current-URL": "https://evil.example/jobs/"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/"


def test_it_sends_an_expired_boosted_navigation_back_to_the_page_it_asked_for(client: Client, db: None) -> None:
    response = client.get(
        "/jobs/", headers={"HX-Request": "true", "HX-Boosted": "true", "HX-Current-URL": "http://testserver/"}
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == "/accounts/login/?next=/jobs/"
