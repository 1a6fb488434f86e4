"""The audit log browser's filters and table: every filter uses an index, free text is bounded."""

from __future__ import annotations

from typing import Any, cast

import django_filters
import django_tables2 as tables
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode

from console.core.tables import ConsoleTable, Ordering
from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.models import Event, EventQuerySet

ORDERINGS = {
    "newest": ("Newest", Ordering("position", "position", descending=True)),
    "oldest": ("Oldest", Ordering("position", "position", descending=False)),
}


class EventFilterForm(forms.Form):
    def clean_type(self) -> str:
        value = str(self.cleaned_data.get("type") or "").strip()
        if value and value not in catalog and not Event.objects.filter(type=value).exists():
            raise forms.ValidationError("No event type has this name.")
        return value

    def clean_actor(self) -> str:
        value = str(self.cleaned_data.get("actor") or "").strip()
        if value and not get_user_model().objects.filter(username=value).exists():
            raise forms.ValidationError("No user has this username.")
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since >= until:
            self.add_error("until", "“Until” must be after “since”.")
        return data


class EventFilter(django_filters.FilterSet):
    type = django_filters.CharFilter(label="Type", widget=forms.TextInput(attrs={"list": "event-types"}))
    actor = django_filters.CharFilter(label="Actor", method="filter_actor")
    stream = django_filters.CharFilter(label="Stream", field_name="stream_id")
    request = django_filters.CharFilter(label="Request id", method="filter_request")
    since = django_filters.IsoDateTimeFilter(
        label="Since",
        field_name="recorded_at",
        lookup_expr="gte",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    until = django_filters.IsoDateTimeFilter(
        label="Until",
        field_name="recorded_at",
        lookup_expr="lt",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )
    q = django_filters.CharFilter(
        label="Text", method="filter_text", widget=forms.TextInput(attrs={"type": "search", "maxlength": 100})
    )

    class Meta:
        model = Event
        fields: list[str] = []
        form = EventFilterForm

    def filter_actor(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        user = get_user_model().objects.filter(username=value).values_list("pk", flat=True).first()
        return queryset.filter(actor_id=user)

    def filter_request(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        return cast(EventQuerySet, queryset).with_request(value)

    def filter_text(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        # Matching text inside JSON cannot use an index: look only at the newest SEARCH_WINDOW events.
        value = value[:100]
        newest = Event.objects.aggregate(newest=Max("position"))["newest"] or 0
        window = events_settings().SEARCH_WINDOW
        return (
            queryset.filter(position__gt=newest - window)
            .alias(data_text=Cast("data", TextField()))
            .filter(Q(type__icontains=value) | Q(stream_id__icontains=value) | Q(data_text__icontains=value))
        )


class EventTable(ConsoleTable):
    position = tables.Column(verbose_name="#")
    recorded_at = tables.DateTimeColumn(verbose_name="When", format="Y-m-d H:i:s")
    type = tables.Column()
    actor = tables.Column(accessor="actor__username", default="—")
    stream_id = tables.Column(verbose_name="Stream", default="")
    summary = tables.Column(accessor="data", verbose_name="Data", orderable=False)

    class Meta(ConsoleTable.Meta):
        model = Event
        fields = ["position", "recorded_at", "type", "actor", "stream_id"]
        empty_text = "No events match these filters."

    def render_position(self, value: int) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("events:detail", args=[value]), value)

    def render_stream_id(self, value: str) -> str:
        link = f"{reverse('events:list')}?{urlencode({'stream': value})}"
        return format_html('<a href="{}">{}</a>', link, value)

    def render_summary(self, value: dict[str, Any]) -> str:
        text = ", ".join(f"{key}={item}" for key, item in list(value.items())[:4])
        return text if len(text) <= 120 else text[:119] + "…"
