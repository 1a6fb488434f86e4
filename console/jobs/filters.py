"""The run history's and the schedules' filters and tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django_filters
import django_tables2 as tables
from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet
from django.db.models.functions import Coalesce
from django.http import HttpRequest, QueryDict
from django.urls import reverse
from django.utils.html import format_html

from console.core.inputs import since_q, until_q
from console.core.tables import ConsoleTable, MomentFilter
from console.jobs.models import FINAL, JobRun, Schedule, Status, status_text

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, PermissionsMixin


def staff_users(request: HttpRequest | None) -> QuerySet[Any]:
    """Asked per request, never at import: the site's user model is only known once apps are ready."""
    users = get_user_model()
    return users._default_manager.filter(is_staff=True).order_by(users.USERNAME_FIELD)


class JobRunFilter(django_filters.FilterSet):
    command = django_filters.CharFilter(label="Command", lookup_expr="exact")
    status = django_filters.ChoiceFilter(choices=Status.choices, empty_label="any")
    actor = django_filters.ModelChoiceFilter(field_name="requested_by", label="User", queryset=staff_users)
    # A run is in a time range when it ended there (or was queued there, if it has not ended): a chart's bar
    # counts runs by when they ended, and links here with its interval.
    since = MomentFilter(label="Since", method="filter_since")
    until = MomentFilter(label="Until", method="filter_until")
    q = django_filters.CharFilter(label="Arguments contain", field_name="argv_display", lookup_expr="icontains")

    class Meta:
        model = JobRun
        fields: list[str] = []

    def filter_since(self, queryset: QuerySet[JobRun], name: str, value: Any) -> QuerySet[JobRun]:
        return queryset.alias(ended=Coalesce("finished_at", "queued_at")).filter(since_q("ended", value))

    def filter_until(self, queryset: QuerySet[JobRun], name: str, value: Any) -> QuerySet[JobRun]:
        return queryset.alias(ended=Coalesce("finished_at", "queued_at")).filter(until_q("ended", value))


# What a bulk action acts on: stop only what has not ended (a run awaiting approval is withdrawn, as its
# page's stop does), re-run only what has (a rejected run's re-run awaits approval again, as any run of it).
STOPPABLE = (Status.AWAITING, Status.QUEUED, Status.RUNNING)
BULK_STATUSES = {"stop": STOPPABLE, "rerun": FINAL}


def bulk_targets(
    user: PermissionsMixin | AnonymousUser, *, action: str, query: str, ids: list[int] | None
) -> QuerySet[JobRun]:
    """The runs a bulk ``action`` takes: the ``ids`` chosen, or all the filter ``query`` matches, that
    ``user`` may read and that are in a state the action applies to."""
    runs = JobRun.objects.visible_to(user)
    if ids is not None:
        runs = runs.filter(pk__in=ids)
    else:
        filterset = JobRunFilter(QueryDict(query), queryset=runs)
        runs = filterset.qs if filterset.is_valid() else runs.none()
    return runs.filter(status__in=BULK_STATUSES[action])


class JobRunTable(ConsoleTable):
    select = tables.Column(verbose_name="Select", accessor="pk", orderable=False)
    id = tables.Column(verbose_name="Run")
    command = tables.Column()
    argv_display = tables.Column(verbose_name="Arguments")
    status = tables.Column()
    requested_by = tables.Column(verbose_name="User")
    queued_at = tables.DateTimeColumn(verbose_name="Queued", format="Y-m-d H:i:s")
    exit_code = tables.Column(verbose_name="Exit")

    class Meta(ConsoleTable.Meta):
        model = JobRun
        fields = ["select", "id", "command", "argv_display", "status", "requested_by", "queued_at", "exit_code"]
        empty_text = "No runs match these filters."

    def render_select(self, value: int) -> str:
        # The checkboxes belong to the bulk form above the table (the form attribute), not to the filter form.
        return format_html(
            '<input type="checkbox" name="run" value="{}" form="bulk-form" aria-label="Select run #{}">', value, value
        )

    def render_id(self, value: int) -> str:
        return format_html('<a href="{}">#{}</a>', reverse("jobs:run", args=[value]), value)

    def render_status(self, record: JobRun) -> str:
        # Not ``value``: django-tables2 passes a choice's label, and the class wants the stored value.
        return format_html('<span class="badge {}">{}</span>', record.status, status_text(record.status))

    def render_argv_display(self, value: str) -> str:
        return format_html("<code>{}</code>", value[:200])


class ScheduleFilter(django_filters.FilterSet):
    q = django_filters.CharFilter(label="Name or command contains", method="filter_q")
    enabled = django_filters.BooleanFilter(label="Enabled")

    class Meta:
        model = Schedule
        fields: list[str] = []

    def filter_q(self, queryset: QuerySet[Schedule], name: str, value: str) -> QuerySet[Schedule]:
        return queryset.filter(Q(name__icontains=value) | Q(command__icontains=value))


class ScheduleTable(ConsoleTable):
    name = tables.Column()
    command = tables.Column(verbose_name="Command line", accessor="argv_display")
    when = tables.Column(verbose_name="When", accessor="cron", orderable=False)
    next_run_at = tables.DateTimeColumn(verbose_name="Next run (UTC)", format="Y-m-d H:i", default="paused")
    last_due_at = tables.DateTimeColumn(verbose_name="Last due (UTC)", format="Y-m-d H:i", default="—")
    source = tables.Column(verbose_name="Defined in")

    class Meta(ConsoleTable.Meta):
        model = Schedule
        fields = ["name", "command", "when", "next_run_at", "last_due_at", "source"]
        empty_text = "No schedules match these filters."

    def render_name(self, record: Schedule) -> str:
        return format_html('<a href="{}">{}</a>', reverse("jobs:schedule", args=[record.pk]), record.name)

    def render_command(self, record: Schedule) -> str:
        return format_html("<code>{} {}</code>", record.command, record.argv_display[:200])

    def render_when(self, record: Schedule) -> str:
        return record.when

    def render_source(self, record: Schedule) -> str:
        return "settings" if record.read_only else "console"
