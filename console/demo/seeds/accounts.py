"""Demo event-sourced accounts: opened, paid into, drawn from and transferred between, with some refusals."""

from __future__ import annotations

import random

from django.db import transaction

from console.demo.accounts import Account
from console.demo.seeds import SeedOptions
from console.events.models import Event
from console.events.subscriptions import catch_up
from console.eventsourcing import repository
from console.eventsourcing.domain import DomainError

ORDER = 40
OWNERS = (
    "Ada Lovelace",
    "Grace Hopper",
    "Alan Turing",
    "Edsger Dijkstra",
    "Barbara Liskov",
    "Donald Knuth",
    "Frances Allen",
    "Ken Thompson",
    "Margaret Hamilton",
    "John McCarthy",
    "Radia Perlman",
    "Niklaus Wirth",
)
PREFIX = "demo-acc-"


def seed(options: SeedOptions) -> str:
    """Top the demo accounts up to about ``events / 2`` account events; a second run adds nothing."""
    ids = [f"{PREFIX}{n:02d}" for n in range(len(OWNERS))]
    existing = Event.objects.filter(stream_type="account", stream_id__startswith=PREFIX).count()
    target = max(len(ids), options.events // 2)
    opened = refused = 0
    with transaction.atomic():
        for account_id, owner in zip(ids, OWNERS, strict=True):
            if not Event.objects.filter(stream_id=account_id).exists():
                repository.save(Account.open(owner=owner, account_id=account_id), actor=None)
                opened += 1
                existing += 1
        rng = random.Random(existing)
        added = 0
        while existing + added < target:
            source = repository.load(rng.choice(ids), cls=Account)
            roll = rng.random()
            try:
                if roll < 0.45:
                    source.deposit(rng.randint(1_000, 50_000))
                    added += len(repository.save(source))
                elif roll < 0.75:
                    # Some of these exceed the balance: the domain refuses them and nothing is appended.
                    source.withdraw(rng.randint(500, 60_000))
                    added += len(repository.save(source))
                else:
                    target_account = repository.load(rng.choice([i for i in ids if i != source.id]), cls=Account)
                    source.transfer_to(target_account, rng.randint(100, 20_000))
                    added += len(repository.save(source, target_account))
            except DomainError:
                refused += 1
    projected = catch_up("accounts.activity")
    return (
        f"{opened} account(s) opened, {added} account event(s) appended, {refused} command(s) refused by the domain, "
        f"{projected} event(s) projected asynchronously"
    )
