from __future__ import annotations

from django.urls import path

from console.jobs import views

app_name = "jobs"
urlpatterns = [
    path("jobs/", views.command_catalog, name="catalog"),
    path("jobs/runs/", views.run_history, name="runs"),
    path("jobs/runs/bulk", views.run_bulk, name="runs_bulk"),
    path("jobs/runs/<int:pk>/", views.run_detail, name="run"),
    path("jobs/runs/<int:pk>/output", views.run_output, name="run_output"),
    path("jobs/runs/<int:pk>/output.txt", views.run_download, name="run_download"),
    path("jobs/runs/<int:pk>/stop", views.run_stop, name="run_stop"),
    path("jobs/runs/<int:pk>/rerun", views.run_rerun, name="run_rerun"),
    path("jobs/schedules/", views.schedule_list, name="schedules"),
    path("jobs/schedules/new/", views.schedule_pick, name="schedule_pick"),
    path("jobs/schedules/new/<text:command>/", views.schedule_new, name="schedule_new"),
    path("jobs/schedules/<int:pk>/", views.schedule_detail, name="schedule"),
    path("jobs/schedules/<int:pk>/edit", views.schedule_edit, name="schedule_edit"),
    path("jobs/schedules/<int:pk>/pause", views.schedule_pause, name="schedule_pause"),
    path("jobs/schedules/<int:pk>/resume", views.schedule_resume, name="schedule_resume"),
    path("jobs/schedules/<int:pk>/run", views.schedule_run, name="schedule_run"),
    path("jobs/runs/<int:pk>/for-real", views.run_for_real, name="run_for_real"),
    path("jobs/runs/<int:pk>/compare", views.run_compare, name="run_compare"),
    path("jobs/runs/<int:pk>/approve", views.run_approve, name="run_approve"),
    path("jobs/runs/<int:pk>/reject", views.run_reject, name="run_reject"),
    path("jobs/<text:command>/", views.command_form, name="command"),
    path("jobs/<text:command>/preview", views.command_preview, name="command_preview"),
]
