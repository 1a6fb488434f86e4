from __future__ import annotations

from django.urls import path

from console.core.views import section_not_built

app_name = "eventsourcing"
urlpatterns = [
    path("streams/", section_not_built, {"section": "Streams"}, name="streams"),
    path("projections/", section_not_built, {"section": "Projections"}, name="projections"),
]
