"""The demo domain's read models: ordinary Django models that the account projections write."""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.urls import reverse

from console.eventsourcing.models import ReadModel


class AccountBalance(ReadModel):
    """Projected inline: one row per account, current in the saving transaction."""

    projection: ClassVar[str] = "accounts.balances"
    account_id = models.CharField(max_length=100)
    owner = models.CharField(max_length=200)
    balance = models.BigIntegerField(default=0)
    version = models.PositiveIntegerField(default=0)
    closed = models.BooleanField(default=False)

    class Meta:
        ordering = ["account_id"]
        permissions = [("operate_accounts", "Can open accounts and move money in the demo domain")]
        constraints = [
            models.UniqueConstraint(fields=["generation", "account_id"], name="es_balance_generation_account")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.balance}"

    def get_absolute_url(self) -> str:
        return reverse("demo:account", args=[self.account_id])

    @classmethod
    def get_list_url(cls) -> str:
        return reverse("demo:accounts")


class AccountActivity(ReadModel):
    """Projected asynchronously by a subscription: money in and out per account."""

    projection: ClassVar[str] = "accounts.activity"
    account_id = models.CharField(max_length=100)
    deposits = models.PositiveIntegerField(default=0)
    withdrawals = models.PositiveIntegerField(default=0)
    transfers = models.PositiveIntegerField(default=0)
    total_in = models.BigIntegerField(default=0)
    total_out = models.BigIntegerField(default=0)
    events = models.PositiveIntegerField(default=0)
    last_position = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["account_id"]
        verbose_name_plural = "account activity"
        constraints = [
            models.UniqueConstraint(fields=["generation", "account_id"], name="es_activity_generation_account")
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: +{self.total_in} -{self.total_out}"

    @property
    def net(self) -> int:
        return self.total_in - self.total_out

    @classmethod
    def get_list_url(cls) -> str:
        return reverse("demo:activity")
