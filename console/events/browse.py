"""The audit log browser's filters and orders: every filter uses an index, free text is bounded."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import quote

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.db.models import Max, Q, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from console.core.inputs import representable_time
from console.core.tables import Ordering
from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.models import Event, EventQuerySet

ORDERINGS = {
    "newest": ("Newest", Ordering("position", "position", descending=True)),
    "oldest": ("Oldest", Ordering("position", "position", descending=False)),
}


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"


class SearchInput(forms.TextInput):
    input_type = "search"


class EventFilterForm(forms.Form):
    def clean_type(self) -> str:
        value = str(self.cleaned_data.get("type") or "").strip()
        if value and value not in catalog and not Event.objects.filter(type=value).exists():
            raise forms.ValidationError("No event type has this name.")
        return value

    def clean_actor(self) -> str:
        """The username becomes the user's id, so filtering needs no second lookup."""
        value = str(self.cleaned_data.get("actor") or "").strip()
        if not value:
            return ""
        users = get_user_model()
        pk = users._default_manager.filter(**{users.USERNAME_FIELD: value}).values_list("pk", flat=True).first()
        if pk is None:
            raise forms.ValidationError("No user has this username.")
        return str(pk)

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
        widget=DateTimeLocalInput(format="%Y-%m-%dT%H:%M"),
        validators=[representable_time],
    )
    until = django_filters.IsoDateTimeFilter(
        label="Until",
        field_name="recorded_at",
        lookup_expr="lt",
        widget=DateTimeLocalInput(format="%Y-%m-%dT%H:%M"),
        validators=[representable_time],
    )
    q = django_filters.CharFilter(label="Text", method="filter_text", widget=SearchInput(attrs={"maxlength": 100}))

    class Meta:
        model = Event
        fields: list[str] = []
        form = EventFilterForm

    def filter_actor(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        # The user's primary key as the form cleaned it: whatever its type, the database compares it.
        return queryset.filter(**{"actor_id": value})

    def filter_request(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        return cast(EventQuerySet, queryset).with_request(value)

    def filter_text(self, queryset: QuerySet[Event], name: str, value: str) -> QuerySet[Event]:
        # Matching text inside JSON cannot use an index: look only at the newest SEARCH_WINDOW events.
        value = value[:100]
        newest = Event.objects.aggregate(newest=Max("position"))["newest"] or 0
        window = events_settings().search_window
        return (
            queryset.filter(position__gt=newest - window)
            .alias(data_text=Cast("data", TextField()))
            .filter(Q(type__icontains=value) | Q(stream_id__icontains=value) | Q(data_text__icontains=value))
        )


def rows_html(events: list[Event], target_url: str) -> SafeString:
    """The audit log's table rows, written here: a page of 50 events through the template language cost more
    than its query and the rest of the page together. Every value is escaped."""
    lines = []
    for event in events:
        actor = event.actor.get_username() if event.actor is not None else "—"
        stream = ""
        if event.stream_id:
            href = f"{target_url}?stream={quote(event.stream_id, safe='/')}"  # as the urlencode filter does
            stream = f'<a href="{escape(href)}">{escape(event.stream_id)}</a>'
        lines.append(
            f'<tr><td><a href="{escape(target_url)}{event.position}/">#{event.position}</a></td>'
            f"<td>{event.recorded_at_text}</td><td>{escape(event.type)}</td><td>{escape(actor)}</td>"
            f"<td>{stream}</td><td>{escape(event.summary)}</td></tr>"
        )
    return mark_safe("\n".join(lines))  # every value above is escaped
