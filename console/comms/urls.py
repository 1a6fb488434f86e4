from __future__ import annotations

from django.urls import path

from console.comms import views

app_name = "comms"
urlpatterns = [
    path("messages/", views.message_list, name="messages"),
    path("messages/resend/", views.message_bulk, name="messages_resend"),
    path("messages/cancel/", views.message_bulk_cancel, name="messages_cancel"),
    path("messages/previews/", views.previews, name="previews"),
    path("messages/previews/<text:key>/html/", views.preview_html, name="preview_html"),
    path("messages/<int:pk>/", views.message_detail, name="message"),
    path("messages/<int:pk>/html/", views.message_html, name="message_html"),
    path("messages/<int:pk>/resend/", views.message_resend, name="message_resend"),
    path("messages/<int:pk>/cancel/", views.message_cancel, name="message_cancel"),
    path("contacts/", views.contact_list, name="contacts"),
    path("contacts/reactivate/", views.contact_reactivate, name="contact_reactivate"),
    path("contacts/preferences/", views.preferences, name="preferences"),
    path("comms/unsubscribe/", views.unsubscribe, name="unsubscribe"),
    path("comms/inbound/", views.inbound, name="inbound"),
]
