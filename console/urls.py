"""The console's pages, for the console apps the site has installed: ``path("ops/", include("console.urls"))``.

No admin and no sign-in views: the site's own ``LOGIN_URL`` is where anonymous visitors are sent. Each app's
URLs can also be included alone (``path("ops/", include("console.jobs.urls"))``), under its own namespace.
"""

from __future__ import annotations

from django.apps import apps
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = [path("", include("console.core.urls"))]
for app in ("console.jobs", "console.events", "console.eventsourcing", "console.comms", "console.demo"):
    if apps.is_installed(app):
        urlpatterns.append(path("", include(f"{app}.urls")))
