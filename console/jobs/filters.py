"""The run history's filters and table: by command, status, user, date and argument text."""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import django_filters
import django_tables2 as tables
from django.contrib.auth import get_user_model
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from console.core.inputs import representable_time
from console.core.tables import ConsoleTable
from console.jobs.models import JobRun, Status, status_text


def staff_users(request: HttpRequest | None) -> QuerySet[Any]:
    """Asked per request, never at import: the site's user model is only known once apps are ready."""
    users = get_user_model()
    return users._default_manager.filter(is_staff=True).order_by(users.USERNAME_FIELD)


class JobRunFilter(django_filters.FilterSet):
    command = django_filters.CharFilter(label="Command", lookup_expr="exact")
    status = django_filters.ChoiceFilter(choices=Status.choices, empty_label="any")
    actor = django_filters.ModelChoiceFilter(field_name="requested_by", label="User", queryset=staff_users)
    since = django_filters.DateFilter(label="Since", method="filter_since", validators=[representable_time])
    until = django_filters.DateFilter(label="Until", method="filter_until", validators=[representable_time])
    q = django_filters.CharFilter(label="Arguments contain", field_name="argv_display", lookup_expr="icontains")

    class Meta:
        model = JobRun
        fields: list[str] = []

    def filter_since(self, queryset: QuerySet[JobRun], name: str, value: Any) -> QuerySet[JobRun]:
        return queryset.filter(queued_at__gte=timezone.make_aware(datetime.combine(value, time.min)))

    def filter_until(self, queryset: QuerySet[JobRun], name: str, value: Any) -> QuerySet[JobRun]:
        return queryset.filter(queued_at__lte=timezone.make_aware(datetime.combine(value, time.max)))


class JobRunTable(ConsoleTable):
    id = tables.Column(verbose_name="Run")
    command = tables.Column()
    argv_display = tables.Column(verbose_name="Arguments")
    status = tables.Column()
    requested_by = tables.Column(verbose_name="User")
    queued_at = tables.DateTimeColumn(verbose_name="Queued", format="Y-m-d H:i:s")
    exit_code = tables.Column(verbose_name="Exit")

    class Meta(ConsoleTable.Meta):
        model = JobRun
        fields = ["id", "command", "argv_display", "status", "requested_by", "queued_at", "exit_code"]
        empty_text = "No runs match these filters."

    def render_id(self, value: int) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("jobs:run", args=[value]), value)

    def render_status(self, record: JobRun) -> str:
        # Not ``value``: django-tables2 passes a choice's label, and the class wants the stored value.
        return format_html('<span class="badge {}">{}</span>', record.status, status_text(record.status))

    def render_argv_display(self, value: str) -> str:
        return format_html("<code>{}</code>", value[:200])
