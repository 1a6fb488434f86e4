from __future__ import annotations

from django.urls import path

from console.core.views import section_not_built

app_name = "jobs"
urlpatterns = [
    path("", section_not_built, {"section": "Jobs"}, name="catalog"),
]
