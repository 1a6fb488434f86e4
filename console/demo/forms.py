from __future__ import annotations

from typing import Any

from django import forms


class AccountActionForm(forms.Form):
    ACTIONS = (("deposit", "Deposit"), ("withdraw", "Withdraw"), ("transfer", "Transfer to"))

    action = forms.ChoiceField(choices=ACTIONS)
    amount = forms.IntegerField(min_value=1, max_value=10**12, help_text="In cents")
    to_account = forms.CharField(required=False, max_length=100, label="To account")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("action") == "transfer" and not data.get("to_account"):
            self.add_error("to_account", "Name the account to transfer to.")
        return data
