"""Concurrent workers claim disjoint deliveries (conditional UPDATE; SKIP LOCKED on PostgreSQL)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from console.comms import sending
from console.comms.classes import lookup
from console.comms.delivery import claim
from console.comms.models import Delivery, Status
from console.comms.sending import send


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_hand_one_delivery_to_two_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sending, "dispatch", lambda ids, run_after=None: None)
    cls = lookup("order_confirmation")
    assert cls is not None
    for i in range(120):
        send(cls.sample(), to=f"c{i}@example.com")
    taken: list[list[int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            while True:
                got = claim(None, limit=7)
                if not got:
                    return
                with lock:
                    taken.append([d.pk for d in got])
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    ids = [pk for batch in taken for pk in batch]
    assert len(ids) == len(set(ids)) == 120
    assert Delivery.objects.filter(status=Status.SENDING).count() == 120
