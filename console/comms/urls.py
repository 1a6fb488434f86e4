from __future__ import annotations

from django.urls import path

from console.core.views import section_not_built

app_name = "comms"
urlpatterns = [
    path("messages/", section_not_built, {"section": "Messages"}, name="messages"),
    path("contacts/", section_not_built, {"section": "Contacts"}, name="contacts"),
]
