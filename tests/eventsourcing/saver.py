"""A second process for the concurrency test: load an account, wait for the signal, deposit, save.

Run as ``python -m tests.eventsourcing.saver <account> <go-file> <amount>`` with ``child_env()``; prints
``loaded`` once the aggregate is in memory and then ``saved`` or ``conflict``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import django


def main(account_id: str, go: Path, amount: int) -> str:
    django.setup()
    from console.demo.accounts import Account
    from console.eventsourcing import repository
    from console.eventsourcing.domain import ConcurrencyError

    account = repository.load(account_id, cls=Account)
    print("loaded", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    account.deposit(amount)
    try:
        repository.save(account)
    except ConcurrencyError:
        return "conflict"
    return "saved"


if __name__ == "__main__":
    print(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])), flush=True)
