from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from django.http import HttpResponse
from django.urls import path

from console.core.auth import staff_required
from console.demo import views


def generic(view: type[Any]) -> Callable[..., HttpResponse]:
    """A plain generic class-based view behind the staff guard, like every console page."""
    return staff_required(cast("Callable[..., HttpResponse]", view.as_view()))


app_name = "demo"
urlpatterns = [
    path("read-models/accounts/", generic(views.AccountListView), name="accounts"),
    path("read-models/accounts/<text:account_id>/", generic(views.AccountDetailView), name="account"),
    path("read-models/accounts/<text:account_id>/act/", views.account_action, name="account_act"),
    path("read-models/activity/", generic(views.ActivityListView), name="activity"),
]
