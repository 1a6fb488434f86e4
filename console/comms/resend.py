"""The bulk resend operation's worker body: every message matching a filter, resent in batches.

The request recorded only the intent (an ``Operation`` with the messages page's filters); here the filter is
applied, the matching messages are counted, and each batch is resent in one transaction (``resend_batch``: a
few queries per batch, not several per message) that also moves the operation's cursor, so a cancel between
batches leaves whole batches done and a restart resumes after the last one.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import QueryDict

from console.comms import declarations
from console.comms.models import Message
from console.comms.services import RESEND_BATCH, resend_batch
from console.comms.tables import MessageFilter
from console.core.models import Operation
from console.events import batch, emit


def run_bulk_resend(operation: Operation) -> None:
    filters = str(operation.params.get("filters", ""))
    force = bool(operation.params.get("force", False))
    filterset = MessageFilter(QueryDict(filters), queryset=Message.objects.all())
    if not filterset.is_valid():
        raise ValueError(f"the filters are not valid: {filterset.errors.as_text()}")
    matching = filterset.qs.resendable(force=force).order_by()
    if operation.total is None:
        operation.set_total(matching.count())
    actor = operation.requested_by if isinstance(operation.requested_by, get_user_model()) else None
    cursor = int(operation.progress.get("cursor", 0))
    resent = int(operation.progress.get("resent", 0))
    skipped = int(operation.progress.get("skipped", 0))
    while True:
        ids = list(matching.filter(pk__gt=cursor).order_by("pk").values_list("pk", flat=True)[:RESEND_BATCH])
        if not ids:
            break
        with transaction.atomic(), batch():  # the batch's events are appended in one insert
            count, reasons = resend_batch(ids, actor=actor, force=force)
            resent, skipped, cursor = resent + count, skipped + len(reasons), ids[-1]
            # In the batch's transaction: a cancel asked meanwhile undoes this batch and stops here.
            operation.advance(len(ids), cursor=cursor, resent=resent, skipped=skipped)
    emit(
        declarations.MESSAGE_BULK_RESEND,
        actor=actor,
        count=resent,
        skipped=skipped,
        filters=filters[:500],
        forced=force,
    )
