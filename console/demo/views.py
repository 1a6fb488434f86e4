"""The demo accounts' read models, through plain generic views, and the form that moves money."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST
from django.views.generic import DetailView, ListView

from console.core.auth import require_perm, staff_required
from console.core.http import ConsoleRequest
from console.demo.accounts import account_deposit, account_transfer, account_withdraw
from console.demo.forms import AccountActionForm
from console.demo.models import AccountActivity, AccountBalance
from console.eventsourcing import projections
from console.eventsourcing.domain import ConcurrencyError, DomainError, StreamNotFound, UnknownEventType
from console.eventsourcing.views import GenerationMixin

OPERATE = "demo.operate_accounts"
ACTIVITY_WAIT_SECONDS = 1.0


if TYPE_CHECKING:
    BalanceList = ListView[AccountBalance]
    BalanceDetail = DetailView[AccountBalance]
    ActivityList = ListView[AccountActivity]
else:
    BalanceList, BalanceDetail, ActivityList = ListView, DetailView, ListView


class AccountListView(GenerationMixin, BalanceList):
    model = AccountBalance
    paginate_by = 50


class AccountDetailView(BalanceDetail):
    model = AccountBalance
    slug_field = "account_id"
    slug_url_kwarg = "account_id"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context.setdefault("form", AccountActionForm())
        context["activity"] = AccountActivity.objects.filter(account_id=self.object.account_id).first()
        return context


class ActivityListView(GenerationMixin, ActivityList):
    model = AccountActivity
    paginate_by = 50


@staff_required
@require_POST
def account_action(request: ConsoleRequest, account_id: str) -> HttpResponse:
    require_perm(request, OPERATE)
    balance = get_object_or_404(AccountBalance, account_id=account_id)
    form = AccountActionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["action"] == "deposit":
                stored = account_deposit(account_id=account_id, amount=data["amount"], actor=request.user)
            elif data["action"] == "withdraw":
                stored = account_withdraw(account_id=account_id, amount=data["amount"], actor=request.user)
            else:
                stored = account_transfer(
                    from_account=account_id, to_account=data["to_account"], amount=data["amount"], actor=request.user
                )
        except (StreamNotFound, UnknownEventType):
            form.add_error("to_account", "There is no such account.")
        except (DomainError, ConcurrencyError) as exc:
            form.add_error("amount", str(exc))
        else:
            messages.success(request, f"{form.cleaned_data['action'].capitalize()} of {data['amount']} done.")
            # Read-your-writes for the async activity figures shown on the next page, within a short bound.
            caught_up = projections.wait_until(
                AccountActivity.projection, stored[-1].position, timeout=ACTIVITY_WAIT_SECONDS
            )
            if not caught_up:
                messages.info(request, "The activity figures are still catching up with this change.")
            return redirect("demo:account", account_id=account_id)
    activity = AccountActivity.objects.filter(account_id=account_id).first()
    return render(
        request,
        "demo/accountbalance_detail.html",
        {"object": balance, "accountbalance": balance, "form": form, "activity": activity},
    )
