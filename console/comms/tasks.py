"""Tasks of the comms app: take ids and call the worker code (claiming happens there)."""

from __future__ import annotations

from typing import Any

from django.tasks import task

from console.comms.delivery import deliver_batch, deliver_due
from console.events.context import restored


@task()
def deliver(*, delivery_ids: list[int], context: dict[str, Any] | None = None) -> dict[str, int]:
    with restored(context):
        return deliver_batch(delivery_ids)


@task()
def sweep(*, context: dict[str, Any] | None = None) -> dict[str, int]:
    with restored(context):
        return deliver_due()
