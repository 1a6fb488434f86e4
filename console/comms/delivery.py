"""Delivery: claim due deliveries, send them, and move each on by its outcome.

A worker claims rows with a conditional UPDATE (after ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL),
so one row is sent by one worker however often the queue hands it out. Temporary failures are retried with
backoff within the message's expiry; a permanent recipient failure marks the address defunct and falls back
to the next channel the message class allows; a policy rejection alerts staff.
"""

from __future__ import annotations

import functools
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db import connection, models, transaction
from django.db.models import F
from django.utils import timezone

from console.comms import alerts, declarations, routing, sending
from console.comms.conf import comms_settings
from console.comms.failover import Router
from console.comms.models import Attempt, ContactPoint, ContactState, Delivery, FailureClass, Message, Status
from console.comms.outcomes import INFRASTRUCTURE, POLICY, RECIPIENT, SENT, TEMPORARY, Outcome
from console.events import batch, emit

log = structlog.get_logger("console.comms")


def claim(delivery_ids: list[int] | None, *, now: datetime | None = None, limit: int | None = None) -> list[Delivery]:
    """Take due deliveries for this worker: a conditional UPDATE only one worker can win per row.

    On PostgreSQL the candidate rows are first locked with ``FOR UPDATE SKIP LOCKED``, so concurrent
    workers take different rows instead of queueing on the same ones.
    """
    now = now or timezone.now()
    if delivery_ids is None and limit is None:
        limit = comms_settings().batch_size
    token = uuid.uuid4().hex
    with transaction.atomic():
        candidates = Delivery.objects.claimable(now)
        if delivery_ids is not None:
            candidates = candidates.filter(pk__in=delivery_ids)
        if connection.vendor == "postgresql":
            locked = candidates.select_for_update(skip_locked=True).order_by("next_attempt_at", "pk")
            ids = list(locked.values_list("pk", flat=True)[: limit or comms_settings().batch_size])
            candidates = Delivery.objects.claimable(now).filter(pk__in=ids)
        elif limit is not None:
            ids = list(candidates.order_by("next_attempt_at", "pk").values_list("pk", flat=True)[:limit])
            candidates = Delivery.objects.claimable(now).filter(pk__in=ids)
        candidates.update(
            status=Status.SENDING, claimed_at=now, claim_token=token, handed_at=None, attempts=F("attempts") + 1
        )
        claimed = list(Delivery.objects.filter(claim_token=token, status=Status.SENDING).select_related("message"))
        Message.objects.filter(pk__in={d.message_id for d in claimed}).update(status=Status.SENDING)
    return claimed


FLUSH_EVERY = 50
# A sweep claims this many due deliveries at a time and comes back for more, so a backlog is shared by every
# thread sweeping instead of waiting behind one thread's batch (100 take 3 s at 30 ms a message), and messages
# committed while it sends go out without waiting for another task. Fewer per claim cost more claims: in
# bench_comms 10 made one worker 10-20% slower, 25 kept its rate and 50 let two workers fall behind.
SWEEP_SHARE = 25
# A sweep still finding work after this long hands on to a fresh task, so other tasks get their turn.
SWEEP_SECONDS = 5.0


def deliver_due() -> dict[str, int]:
    """A coalesced dispatch: send the due deliveries, a share at a time, until none is due.

    A sweep whose first share is full first enqueues another sweep, so a backlog spreads over the worker
    threads (each sweep recruits at most one). Under an inline backend, where an enqueued sweep would run
    inside this one, it neither recruits nor hands on: it goes on until none is due.
    """
    share = min(SWEEP_SHARE, comms_settings().batch_size)
    queued = sending.sweeps_queue()
    deadline = time.monotonic() + SWEEP_SECONDS
    counts: Counter[str] = Counter()
    claimed = claim(None, limit=share)
    if queued and len(claimed) >= share:
        sending.sweep_now()
    while claimed:
        counts.update(send_claimed(claimed))
        if queued and time.monotonic() >= deadline:
            sending.sweep_now()
            break
        claimed = claim(None, limit=share)
    return dict(counts)


def deliver_batch(delivery_ids: list[int] | None = None, *, limit: int | None = None) -> dict[str, int]:
    """Claim the given (or any due) deliveries, send them, record each outcome. Returns counts per outcome."""
    return send_claimed(claim(delivery_ids, limit=limit))


def send_claimed(claimed: list[Delivery]) -> dict[str, int]:
    """Send claimed deliveries and record each outcome. Returns counts per outcome.

    A success is made durable before the next message is sent (one UPDATE of the delivery), so a worker
    that dies mid-batch resends at most the message whose transaction was cut. Its attempt row, the
    message's status and its ``message.sent`` event are written in bulk every ``FLUSH_EVERY`` successes;
    if the worker dies before that, the reconciler writes them from the delivery row.
    """
    counts: dict[str, int] = defaultdict(int)
    soft = set(
        ContactPoint.objects.filter(address__in={d.address for d in claimed})
        .exclude(soft_failures=0, state=ContactState.ACTIVE)
        .values_list("channel", "address")
    )
    sent: list[Delivery] = []

    def handle(delivery: Delivery, outcome: Outcome) -> None:
        counts[outcome.kind] += 1
        if outcome.kind == SENT:
            mark_sent(delivery, outcome)
            sent.append(delivery)
            if len(sent) >= FLUSH_EVERY:
                record_sent(sent, soft=soft)
                sent.clear()
        else:
            record_outcome(delivery, outcome)

    router = Router()
    router.prepare(claimed)
    try:
        for delivery in claimed:
            # Right before the first provider conversation: a delivery cancelled since the claim is not sent.
            if not hand_over(delivery):
                continue
            outcome, failed_over = router.send(delivery)
            record_failover(delivery, failed_over)
            handle(delivery, outcome)
    except BaseException:
        router.close(failed=True)  # a connection left mid-transaction must not serve the next task
        raise
    router.close()
    record_sent(sent, soft=soft)
    return dict(counts)


@dataclass(frozen=True)
class _PerMessageSql:
    hand_over: str
    mark_sent: str


@functools.cache
def _per_message_sql(vendor: str) -> _PerMessageSql:
    """The two UPDATEs every sent message costs, written once per database vendor.

    Through the ORM each one spent longer being compiled than being run: about 15% of a delivery's time in
    ``bench_comms``. They stay parameterised SQL built from the model's own table and column names.
    """
    quote = connection.ops.quote_name
    table = quote(Delivery._meta.db_table)

    def column(name: str) -> str:
        field = Delivery._meta.get_field(name)
        assert isinstance(field, models.Field) and field.column, name  # concrete columns only
        return quote(field.column)

    return _PerMessageSql(
        hand_over=(
            f"UPDATE {table} SET {column('handed_at')} = %s"
            f" WHERE {column('id')} = %s AND {column('status')} = %s AND {column('claim_token')} = %s"
        ),
        mark_sent=(
            f"UPDATE {table} SET {column('status')} = %s, {column('sent_at')} = %s, {column('provider_id')} = %s,"
            f" {column('provider')} = %s, {column('claim_token')} = '' WHERE {column('id')} = %s"
        ),
    )


def hand_over(delivery: Delivery) -> bool:
    """Commit to sending ``delivery`` now, unless it was cancelled since this worker claimed it.

    One conditional UPDATE, the counterpart of the one ``message_cancel`` runs: the database lets exactly
    one of them change the row, so a cancelled delivery is never sent and a handed one is never cancelled.
    """
    at = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            _per_message_sql(connection.vendor).hand_over, [at, delivery.pk, Status.SENDING, delivery.claim_token]
        )
        return bool(cursor.rowcount)


def mark_sent(delivery: Delivery, outcome: Outcome) -> None:
    """The durable fact that ``delivery`` went out, written before anything else is sent."""
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            _per_message_sql(connection.vendor).mark_sent,
            [Status.SENT, at, outcome.provider_id, outcome.provider, delivery.pk],
        )
    delivery.status, delivery.sent_at = Status.SENT, now
    delivery.provider_id, delivery.provider = outcome.provider_id, outcome.provider


def record_sent(deliveries: list[Delivery], *, soft: set[tuple[str, str]] | None = None) -> None:
    """Attempts, message statuses and ``message.sent`` events of deliveries already marked sent, in bulk."""
    if not deliveries:
        return
    with transaction.atomic(), batch():
        Attempt.objects.bulk_create(
            Attempt(
                delivery=d,
                at=d.sent_at or timezone.now(),
                channel=d.channel,
                address=d.address,
                outcome=SENT,
                provider_id=d.provider_id,
                provider=d.provider,
            )
            for d in deliveries
        )
        by_channel: dict[str, list[int]] = defaultdict(list)
        for d in deliveries:
            by_channel[d.channel].append(d.message_id)
        for channel, message_ids in by_channel.items():
            Message.objects.filter(pk__in=message_ids).update(status=Status.SENT, channel=channel, failure_class="")
        clear = [d for d in deliveries if soft is None or (d.channel, d.address) in soft]
        for d in clear:
            ContactPoint.objects.at(d.channel, d.address).clear_soft_failures()
        for d in deliveries:
            emit(
                declarations.MESSAGE_SENT,
                **Message.stream_of(d.message_id),
                message_id=d.message_id,
                message_type=d.message.message_type,
                channel=d.channel,
                attempts=d.attempts,
                provider_id=d.provider_id,
            )


def record_failover(delivery: Delivery, failures: list[Outcome]) -> None:
    """Attempts of the providers a delivery failed over from (the next provider was tried at once)."""
    if failures:
        Attempt.objects.bulk_create(
            Attempt(
                delivery=delivery,
                channel=delivery.channel,
                address=delivery.address,
                outcome=failure.kind,
                code=failure.code,
                enhanced_code=failure.enhanced_code,
                provider=failure.provider,
                error=f"{Attempt.FAILED_OVER}: {failure.error}"[:1000],
            )
            for failure in failures
        )


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential backoff with full jitter; a provider's Retry-After is a floor, never ignored."""
    conf = comms_settings()
    ceiling = min(float(conf.backoff_cap_seconds), float(conf.backoff_base_seconds) * 2 ** max(0, attempt - 1))
    delay = random.uniform(0, ceiling)
    return max(delay, retry_after or 0.0)


def record_outcome(delivery: Delivery, outcome: Outcome) -> None:
    """Write the failed attempt and move the delivery (and its message) on according to the outcome.

    Successes never come here: ``mark_sent`` and ``record_sent`` write them, in bulk.
    """
    now = timezone.now()
    with transaction.atomic():
        Attempt.objects.create(
            delivery=delivery,
            at=now,
            channel=delivery.channel,
            address=delivery.address,
            outcome=outcome.kind,
            code=outcome.code,
            enhanced_code=outcome.enhanced_code,
            provider_id=outcome.provider_id,
            provider=outcome.provider,
            error=outcome.error,
        )
        msg = delivery.message
        if outcome.kind == TEMPORARY:
            if not outcome.provider_fault:  # the provider was down: nothing learned about the address
                count_soft_failure(delivery, outcome, now)
            retry_at = now + timedelta(seconds=backoff_seconds(delivery.attempts, outcome.retry_after))
            # A retry due outside the send window waits for it, like a first delivery.
            held_until, hold_reason = routing.hold_message(msg, retry_at)
            retries_left = delivery.attempts < comms_settings().max_attempts
            if retries_left and held_until is not None and held_until >= msg.expires_at:
                why = f"{hold_reason}; {routing.outside_life(msg, held_until)}"
                fail(delivery, FailureClass.EXPIRED, outcome, reason=f"{why}; last answer: {outcome.error}")
                return
            retry_at = held_until or retry_at
            if retries_left and retry_at < msg.expires_at:
                Delivery.objects.filter(pk=delivery.pk).update(
                    status=Status.DEFERRED, next_attempt_at=retry_at, reason=outcome.error[:300], claim_token=""
                )
                Message.objects.filter(pk=msg.pk).update(
                    status=Status.DEFERRED, held_until=held_until, hold_reason=hold_reason
                )
                held: dict[str, Any] = {"hold_reason": hold_reason} if hold_reason else {}
                emit(
                    declarations.MESSAGE_DEFERRED,
                    **Message.stream_of(msg.pk),
                    message_id=msg.pk,
                    message_type=msg.message_type,
                    channel=delivery.channel,
                    attempts=delivery.attempts,
                    retry_at=retry_at.isoformat(),
                    code=outcome.code,
                    enhanced_code=outcome.enhanced_code,
                    error=outcome.error[:300],
                    **held,
                )
                delivery_id = delivery.pk
                transaction.on_commit(lambda: sending.dispatch([delivery_id], run_after=retry_at))
                return
            why = "expiry reached" if retry_at >= msg.expires_at else f"{delivery.attempts} attempts"
            fail(delivery, FailureClass.TEMPORARY, outcome, reason=f"temporary failures until {why}: {outcome.error}")
        elif outcome.kind == RECIPIENT:
            mark_defunct(delivery, outcome, now)
            fail(delivery, FailureClass.RECIPIENT, outcome, reason=outcome.error)
        elif outcome.kind == POLICY:
            alerts.policy_rejected(delivery, outcome)
            fail(delivery, FailureClass.POLICY, outcome, reason=outcome.error)
        else:
            if outcome.kind != INFRASTRUCTURE:
                raise ValueError(f"record_outcome() takes failures, not {outcome.kind!r}")
            fail(delivery, FailureClass.INFRASTRUCTURE, outcome, reason=outcome.error)


def count_soft_failure(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    contact, _ = ContactPoint.objects.get_or_create(channel=delivery.channel, address=delivery.address)
    evidence = {"last_error": outcome.error[:300], "message_id": delivery.message_id}
    if contact.count_soft_failure(at=now, threshold=comms_settings().soft_fail_after, evidence=evidence):
        emit(
            declarations.CONTACT_SOFT_FAILING,
            channel=contact.channel,
            address=contact.address,
            failures=contact.soft_failures,
        )


def mark_defunct(delivery: Delivery, outcome: Outcome, now: datetime) -> None:
    contact, _ = ContactPoint.objects.get_or_create(channel=delivery.channel, address=delivery.address)
    evidence = {
        "code": outcome.code,
        "enhanced_code": outcome.enhanced_code,
        "message_id": delivery.message_id,
        "delivery_id": delivery.pk,
        "at": now.isoformat(),
    }
    contact.mark_defunct(reason=outcome.error or "permanent recipient failure", evidence=evidence, at=now)
    emit(
        declarations.CONTACT_DEFUNCT,
        **ContactPoint.stream_of(contact.pk),
        channel=contact.channel,
        address=contact.address,
        reason=contact.reason,
        message_id=delivery.message_id,
    )


def fail(delivery: Delivery, failure_class: str, outcome: Outcome | None, *, reason: str) -> None:
    msg = delivery.message
    Delivery.objects.filter(pk=delivery.pk).update(
        status=Status.FAILED, failure_class=failure_class, reason=reason[:300], claim_token=""
    )
    tried = set(msg.deliveries.values_list("channel", flat=True))
    can_fall_back = routing.may_fall_back(msg) and failure_class != FailureClass.EXPIRED
    emit(
        declarations.MESSAGE_FAILED,
        **Message.stream_of(msg.pk),
        message_id=msg.pk,
        message_type=msg.message_type,
        channel=delivery.channel,
        failure_class=failure_class,
        code=outcome.code if outcome else None,
        enhanced_code=outcome.enhanced_code if outcome else "",
        error=(outcome.error if outcome else reason)[:300],
        fallback=can_fall_back and any(c not in tried for c in msg.channels),
    )
    if can_fall_back:
        sending.next_delivery(msg, tried=tried, start=timezone.now(), failure_class=failure_class)
        return
    sending.finish(msg, Status.FAILED, failure_class)
