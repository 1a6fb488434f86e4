"""A throwaway page built on the filterable-table pattern, so its template is tested through a real view."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.template import engines
from django.urls import include, path

from console.core.auth import staff_required
from console.core.http import ConsoleRequest, wants_fragment
from console.core.tables import filtered_table
from tests.core.test_tables import ORDERINGS, UserFilter, UserTable

PAGE = engines["django"].from_string(
    '{% extends "console/base.html" %}{% block content %}<h1>Users</h1>'
    '{% include "core/_filtered_table.html#filters" %}{% include "core/_filtered_table.html#table-region" %}'
    "{% endblock %}"
)


@staff_required
def users(request: ConsoleRequest) -> HttpResponse:
    from django.contrib.auth.models import User

    ft = filtered_table(
        request,
        queryset=User.objects.all(),
        filterset_class=UserFilter,
        table_class=UserTable,
        orderings=ORDERINGS,
        default_sort="newest",
        per_page=25,
    )
    context = {"ft": ft, "target_url": "/users/"}
    if wants_fragment(request):
        return render(request, "core/_filtered_table.html#table-region", context)
    return HttpResponse(PAGE.render(context, request))


# The console's own URLs stay mounted: the base layout links to them.
urlpatterns = [path("users/", users), path("", include("console.urls"))]
