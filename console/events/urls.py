from __future__ import annotations

from django.urls import path

from console.core.views import section_not_built

app_name = "events"
urlpatterns = [
    path("events/", section_not_built, {"section": "Events"}, name="list"),
    path("webhooks/", section_not_built, {"section": "Webhooks"}, name="webhooks"),
]
