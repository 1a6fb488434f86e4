"""The demo accounts seed: volume, refusals that append nothing, and idempotence."""

from __future__ import annotations

from console.demo.models import AccountActivity, AccountBalance
from console.demo.seeds import SeedOptions
from console.demo.seeds.accounts import seed
from console.events.models import Event


def test_the_demo_seed_adds_accounts_with_volume_once(db: None) -> None:
    summary = seed(SeedOptions(events=200, messages=0, verbosity=0))
    assert "12 account(s) opened" in summary
    count = Event.objects.filter(stream_type="account").count()
    assert count >= 100
    assert "0 account(s) opened, 0 account event(s) appended" in seed(SeedOptions(events=200, messages=0, verbosity=0))
    assert Event.objects.filter(stream_type="account").count() == count
    assert all(row.balance >= 0 for row in AccountBalance.objects.all())
    assert {r.account_id: r.net for r in AccountActivity.objects.all()} == dict(
        AccountBalance.objects.values_list("account_id", "balance")
    )
