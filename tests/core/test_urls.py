"""``include("console.urls")`` mounts the console's pages for the installed console apps, and nothing else."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from types import ModuleType

import pytest
from django.test import modify_settings
from django.urls import URLResolver

import console.urls


def namespaces(module: ModuleType) -> set[str]:
    return {entry.namespace or "" for entry in module.urlpatterns if isinstance(entry, URLResolver)}


@pytest.fixture
def reloaded_urls() -> Iterator[None]:
    yield
    importlib.reload(console.urls)


def test_it_mounts_no_admin_and_no_sign_in_views() -> None:
    assert namespaces(console.urls) == {"core", "jobs", "events", "eventsourcing", "comms", "demo"}
    routes = {str(entry.pattern) for entry in console.urls.urlpatterns}
    assert not any(route.startswith(("admin", "accounts")) for route in routes)


@modify_settings(INSTALLED_APPS={"remove": ["console.demo", "console.comms"]})
def test_an_app_the_site_left_out_has_no_urls(reloaded_urls: None) -> None:
    importlib.reload(console.urls)
    assert namespaces(console.urls) == {"core", "jobs", "events", "eventsourcing"}
