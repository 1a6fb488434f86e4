from __future__ import annotations

from django.urls import path

from console.jobs import views

app_name = "jobs"
urlpatterns = [
    path("", views.command_catalog, name="catalog"),
    path("runs/", views.run_history, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/output", views.run_output, name="run_output"),
    path("runs/<int:pk>/output.txt", views.run_download, name="run_download"),
    path("runs/<int:pk>/stop", views.run_stop, name="run_stop"),
    path("runs/<int:pk>/rerun", views.run_rerun, name="run_rerun"),
    path("<str:command>/", views.command_form, name="command"),
    path("<str:command>/preview", views.command_preview, name="command_preview"),
]
