"""Filters and tables of the messages and contacts pages (the console's filterable-table pattern)."""

from __future__ import annotations

from datetime import date, datetime

import django_filters
import django_tables2 as tables
from django import forms
from django.db.models import QuerySet
from django.utils.html import format_html

from console.comms.classes import message_classes
from console.comms.models import Channel, ContactPoint, ContactState, FailureClass, Message, Status
from console.core.inputs import since_q, until_q
from console.core.tables import ConsoleTable, MomentFilter, Ordering


def _type_choices() -> list[tuple[str, str]]:
    return sorted((key, cls.label or key) for key, cls in message_classes.items())


class MessageFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Status.choices, empty_label="any")
    failure_class = django_filters.ChoiceFilter(choices=FailureClass.choices, label="Failure", empty_label="any")
    channel = django_filters.ChoiceFilter(choices=Channel.choices, empty_label="any")
    type = django_filters.ChoiceFilter(field_name="message_type", choices=_type_choices, empty_label="any")
    recipient = django_filters.CharFilter(lookup_expr="startswith", label="Recipient starts with")
    mandatory = django_filters.BooleanFilter(
        widget=forms.Select(choices=[("", "any"), ("true", "yes"), ("false", "no")]), label="Mandatory"
    )
    since = MomentFilter(label="Since (YYYY-MM-DD[THH:MM])", method="filter_since")
    until = MomentFilter(label="Until (YYYY-MM-DD[THH:MM])", method="filter_until")

    class Meta:
        model = Message
        fields: list[str] = []

    # A day or, as the charts link to a bar's interval, a moment; by when the message was created.
    def filter_since(self, queryset: QuerySet[Message], name: str, value: date | datetime) -> QuerySet[Message]:
        return queryset.filter(since_q("created_at", value))

    def filter_until(self, queryset: QuerySet[Message], name: str, value: date | datetime) -> QuerySet[Message]:
        return queryset.filter(until_q("created_at", value))


MESSAGE_ORDERINGS = {
    "newest": ("Newest", Ordering("created_at", "id", descending=True)),
    "oldest": ("Oldest", Ordering("created_at", "id", descending=False)),
}


class ContactFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=ContactState.choices, empty_label="any")
    channel = django_filters.ChoiceFilter(choices=Channel.choices, empty_label="any")
    q = django_filters.CharFilter(field_name="address", lookup_expr="startswith", label="Address starts with")

    class Meta:
        model = ContactPoint
        fields: list[str] = []


CONTACT_ORDERINGS = {
    "recent": ("Recently changed", Ordering("updated_at", "id", descending=True)),
    "address": ("Address", Ordering("address", "id", descending=False)),
}


class ContactTable(ConsoleTable):
    channel = tables.Column()
    address = tables.Column()
    state = tables.Column()
    reason = tables.Column()
    soft_failures = tables.Column(verbose_name="Soft failures")
    last_failure_at = tables.DateTimeColumn(verbose_name="Last failure", format="Y-m-d H:i")
    action = tables.Column(accessor="pk", verbose_name="Action", orderable=False)

    class Meta(ConsoleTable.Meta):
        model = ContactPoint
        fields = ["channel", "address", "state", "reason", "soft_failures", "last_failure_at"]
        row_attrs = {"id": lambda record: f"contact-{record.pk}"}

    def render_state(self, record: ContactPoint) -> str:
        return format_html('<span class="badge {}">{}</span>', record.state, record.get_state_display())

    def render_action(self, record: ContactPoint) -> str:
        if record.state == ContactState.ACTIVE:
            return "—"
        # Submits the page's one reactivate form (which carries the CSRF token) with this contact's id.
        return format_html(
            '<button type="submit" form="reactivate-form" name="contact" value="{}">Reactivate {}</button>',
            record.pk,
            record.address,
        )


def messages_queryset() -> QuerySet[Message]:
    return Message.objects.all().only(
        "id", "message_type", "recipient", "channel", "status", "failure_class", "mandatory", "created_at"
    )
