"""Event in the Django admin: read-only, and the baseline the audit log browser is measured against."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin
from django.http import HttpRequest

from console.events.models import Event

if TYPE_CHECKING:
    EventModelAdmin = admin.ModelAdmin[Event]
else:
    EventModelAdmin = admin.ModelAdmin


@admin.register(Event)
class EventAdmin(EventModelAdmin):
    list_display = ["position", "recorded_at", "type", "actor", "stream_id"]
    list_filter = ["type"]
    search_fields = ["stream_id"]
    list_select_related = ["actor"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Event | None = None) -> bool:
        return False
