from __future__ import annotations

from django.urls import path

from console.eventsourcing import views

app_name = "eventsourcing"
urlpatterns = [
    path("streams/", views.streams, name="streams"),
    path("streams/<text:stream_id>/", views.stream_detail, name="stream"),
    path("projections/", views.projections_view, name="projections"),
    path("projections/<text:name>/rebuild/", views.projection_rebuild, name="rebuild"),
    path("projections/<text:name>/pause/", views.projection_pause_view, name="pause"),
    path("projections/<text:name>/resume/", views.projection_resume_view, name="resume"),
    path("projections/rebuilds/<int:run_id>/cancel/", views.rebuild_cancel_view, name="rebuild-cancel"),
    path("projections/rebuilds/<int:run_id>/resume/", views.rebuild_resume_view, name="rebuild-resume"),
    path("projections/rebuilds/<int:run_id>/promote/", views.rebuild_promote_view, name="rebuild-promote"),
    path("projections/rebuilds/<int:run_id>/compare/", views.rebuild_compare, name="rebuild-compare"),
]
