from __future__ import annotations

from django.urls import path

from console.core import views

app_name = "core"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dashboard/worker", views.worker_status, name="worker_status"),
    path("healthz", views.healthz, name="healthz"),
    path("operations/<int:pk>/", views.operation, name="operation"),
    path("operations/<int:pk>/cancel", views.operation_cancel, name="operation_cancel"),
]
