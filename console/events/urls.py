from __future__ import annotations

from django.urls import path

from console.events import views

app_name = "events"
urlpatterns = [
    path("events/", views.event_list, name="list"),
    path("events/feed", views.feed, name="feed"),
    path("events/catalog/", views.event_catalog, name="catalog"),
    path("events/<int:position>/", views.event_detail, name="detail"),
    path("events/sealed/", views.sealed_log, name="sealed_log"),
    path("events/sealed/verify/", views.sealed_log_verify, name="sealed_log_verify"),
    path("events/subscriptions/", views.subscription_list, name="subscriptions"),
    path("events/subscriptions/rollups/rebuild/", views.rollups_rebuild, name="rollups_rebuild"),
    path("events/subscriptions/<text:name>/pause/", views.subscription_pause, name="subscription_pause"),
    path("events/subscriptions/<text:name>/resume/", views.subscription_resume, name="subscription_resume"),
    path("metrics", views.metrics, name="metrics"),
    path("webhooks/", views.webhook_list, name="webhooks"),
    path("webhooks/new/", views.webhook_new, name="webhook_new"),
    path("webhooks/<int:pk>/", views.webhook_detail, name="webhook"),
    path("webhooks/<int:pk>/edit/", views.webhook_edit, name="webhook_edit"),
    path("webhooks/<int:pk>/enable/", views.webhook_enable, name="webhook_enable"),
    path("webhooks/<int:pk>/test/", views.webhook_test, name="webhook_test"),
    path("webhooks/<int:pk>/secret/", views.webhook_rotate, name="webhook_rotate"),
    path("webhooks/<int:pk>/replay/", views.webhook_replay, name="webhook_replay"),
    path("webhooks/deliveries/<int:pk>/resend/", views.webhook_resend, name="webhook_resend"),
]
