"""Tasks of the comms app: take ids, claim rows, call the write functions."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.comms.services import deliver_batch
from console.events.context import restored


@task()
def deliver(*, delivery_ids: list[int], context: dict[str, Any] | None = None) -> dict[str, int]:
    with restored(context):
        return deliver_batch(delivery_ids)
