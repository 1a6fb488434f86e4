"""Concurrency through real processes and connections: one stream saved twice, projections under load."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.db import connection

from console.core.processes import child_env
from console.demo.accounts import account_deposit, account_transfer, account_withdraw
from console.demo.models import AccountActivity, AccountBalance
from console.events.models import Event
from console.events.subscriptions import catch_up
from console.eventsourcing.domain import ConcurrencyError, DomainError
from tests.eventsourcing.conftest import open_account


def test_two_processes_saving_one_stream_one_wins_and_one_gets_concurrency_error(
    transactional_db: None, tmp_path: Path
) -> None:
    open_account("acc-race")
    go = tmp_path / "go"
    savers = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.eventsourcing.saver", "acc-race", str(go), str(amount)],
            cwd=settings.BASE_DIR,
            env=child_env(LOG_LEVEL="ERROR"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for amount in (100, 200)
    ]
    for saver in savers:
        assert saver.stdout is not None
        assert saver.stdout.readline().strip() == "loaded", saver.stderr.read() if saver.stderr else ""
    go.touch()
    results = []
    for saver in savers:
        out, err = saver.communicate(timeout=60)
        assert saver.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["conflict", "saved"]
    events = list(Event.objects.of_stream("acc-race"))
    assert [e.version for e in events] == [1, 2]
    winner = (100, 200)[results.index("saved")]
    assert events[1].data == {"amount": winner}
    assert AccountBalance.objects.get(account_id="acc-race").balance == winner


def _writer(ids: list[str], seed: int, operations: int) -> None:
    rng = random.Random(seed)
    try:
        for _ in range(operations):
            account, other = rng.sample(ids, 2)
            action = rng.choice(("deposit", "withdraw", "transfer"))
            for _attempt in range(20):
                try:
                    if action == "deposit":
                        account_deposit(account_id=account, amount=rng.randint(1, 50), actor=None)
                    elif action == "withdraw":
                        account_withdraw(account_id=account, amount=rng.randint(1, 50), actor=None)
                    else:
                        account_transfer(from_account=account, to_account=other, amount=rng.randint(1, 50), actor=None)
                    break
                except ConcurrencyError:
                    continue
                except DomainError:
                    break
    finally:
        connection.close()


def _subscriber(stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            catch_up("accounts.activity", max_batches=3)
    finally:
        connection.close()


def test_an_async_projection_with_concurrent_writers_ends_equal_to_the_inline_one(transactional_db: None) -> None:
    # On PostgreSQL the writers commit out of order while the subscription reads; SQLite serializes them.
    ids = [f"acc-{n}" for n in range(6)]
    for account_id in ids:
        open_account(account_id, deposit=1000)
    stop = threading.Event()
    subscriber = threading.Thread(target=_subscriber, args=(stop,))
    writers = [threading.Thread(target=_writer, args=(ids, seed, 40)) for seed in range(4)]
    subscriber.start()
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    stop.set()
    subscriber.join(timeout=60)
    catch_up("accounts.activity")

    inline = dict(AccountBalance.objects.values_list("account_id", "balance"))
    activity = {row.account_id: row for row in AccountActivity.objects.all()}
    assert {key: row.net for key, row in activity.items()} == inline
    for account_id in ids:
        # Every event handled once: nothing missed, nothing doubled.
        assert activity[account_id].events == Event.objects.filter(stream_id=account_id).count()
    assert Event.objects.filter(stream_type="account").count() > len(ids) * 2 + 40
