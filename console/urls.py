"""The console's URLs: mount with ``include("console.urls")``; the standalone site serves them at the root."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from console.core import views as core_views

urlpatterns = [
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("healthz", core_views.healthz, name="healthz"),
    path("", include("console.core.urls")),
    path("jobs/", include("console.jobs.urls")),
    path("", include("console.events.urls")),
    path("", include("console.eventsourcing.urls")),
    path("", include("console.comms.urls")),
    path("", include("console.demo.urls")),
]
