from __future__ import annotations

from django.urls import path

from console.eventsourcing import views

app_name = "eventsourcing"
urlpatterns = [
    path("streams/", views.streams, name="streams"),
    path("streams/<text:stream_id>/", views.stream_detail, name="stream"),
    path("projections/", views.projection_list, name="projections"),
    path("projections/<text:name>/rebuild/", views.projection_rebuild, name="rebuild"),
    path("projections/<text:name>/pause/", views.projection_pause, name="pause"),
    path("projections/<text:name>/resume/", views.projection_resume, name="resume"),
    path("projections/rebuilds/<int:run_id>/cancel/", views.rebuild_cancel, name="rebuild_cancel"),
    path("projections/rebuilds/<int:run_id>/resume/", views.rebuild_resume, name="rebuild_resume"),
    path("projections/rebuilds/<int:run_id>/promote/", views.rebuild_promote, name="rebuild_promote"),
    path("projections/rebuilds/<int:run_id>/compare/", views.rebuild_compare, name="rebuild_compare"),
]
