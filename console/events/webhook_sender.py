"""Publishing the log to webhook endpoints: the subscriber that queues deliveries, and the sender.

The ``events.webhooks`` subscriber turns each published event into one delivery row per interested endpoint,
in the transaction that moves its checkpoint: the log is the outbox, so a rolled-back change is never sent
and a committed one is never forgotten. Sending happens later, outside any transaction, in a task: CloudEvents
1.0 JSON bodies signed the Standard Webhooks way, retried with exponential backoff and full jitter, and the
endpoint switched off (staff alerted) after a 410 or nothing but failures for ``WEBHOOK_DISABLE_AFTER_HOURS``.
Every attempt adds to the endpoint's hourly health row (attempts, successes, latency).

An attempt connects only to the addresses ``webhook_urls.check_url()`` checked, has one deadline for the
whole exchange and reads at most a fixed number of bytes of the answer.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import random
import secrets
import smtplib
import ssl
import time
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar

import httpx
import structlog
from django.core.mail import mail_admins
from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.context import enqueue_on_commit
from console.events.declarations import (
    WEBHOOK_ATTEMPTED,
    WEBHOOK_DISABLED,
)
from console.events.models import Checkpoint, Event, WebhookDelivery, WebhookEndpoint, WebhookHealth
from console.events.pipeline import emit
from console.events.subscriptions import Subscriber
from console.events.webhook_urls import Target, UnsafeURL, check_url

log = structlog.get_logger(__name__)

SOURCE = "/console/events"
# The CloudEvents type of "send test event": no event of the log has it.
SAMPLE_TYPE = "console.webhook.test"
# A claimed delivery whose sender died is handed out again after this long.
CLAIM_TIMEOUT = timedelta(minutes=5)
# The sending task, named rather than imported: the tasks module imports this one.
DELIVER = "console.events.tasks.deliver_webhooks"


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: bytes
    # Bytes of the body read off the connection, kept or not: at most one network read past the cap.
    received: int
    # Why reading stopped before the end of the body, or "".
    cut: str

    @property
    def text(self) -> str:
        text = self.body.decode("utf-8", errors="replace")
        return f"{text}\n[{self.cut}]" if self.cut else text


def post(target: Target, *, content: bytes, headers: dict[str, str], tls: ssl.SSLContext) -> Answer:
    """POST to the target's checked addresses within ``WEBHOOK_TIMEOUT_SECONDS`` for the whole exchange.

    Raises ``httpx.HTTPError``, or ``TimeoutError`` when the answer's status has not arrived in time; a body
    longer than ``WEBHOOK_RESPONSE_MAX_BYTES`` or still arriving at the deadline is cut there.
    """
    conf = events_settings()
    # httpx's timeouts apply to each network operation, so a receiver sending a byte a second never trips
    # them, and httpx has no deadline for a whole exchange (encode/httpx#1450). Cancelling the async client at
    # one does it, for the TLS handshake and the status line as much as for the body.
    return _run_to_completion(
        functools.partial(
            _post,
            target,
            content=content,
            headers=headers,
            tls=tls,
            budget=conf.webhook_timeout_seconds,
            limit=conf.webhook_response_max_bytes,
        )
    )


def _run_to_completion[T](make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine from synchronous code, also when this thread already runs an event loop.

    Workers call ``post()`` from plain threads; inline task backends can call it from a thread that runs an
    event loop (an async server, a test driving a browser), where ``asyncio.run`` refuses: there the
    coroutine gets a loop of its own in a short-lived thread.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make())
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(make())).result()


async def _post(
    target: Target, *, content: bytes, headers: dict[str, str], tls: ssl.SSLContext, budget: float, limit: int
) -> Answer:
    deadline = asyncio.get_running_loop().time() + budget
    # trust_env=False: a proxy taken from the environment would resolve the host name again by itself.
    async with httpx.AsyncClient(verify=tls, timeout=budget, follow_redirects=False, trust_env=False) as client:
        requests = [
            # The "sni_hostname" request extension is httpx's documented way to connect to an address of our
            # choosing: the URL names the checked address, so nothing resolves the name again, while the Host
            # header, TLS SNI and the certificate check keep the name.
            client.build_request(
                "POST",
                target.url.copy_with(host=str(address)),
                content=content,
                headers={**headers, "host": target.url.netloc.decode("ascii")},
                extensions={"sni_hostname": target.url.raw_host.decode("ascii")},
            )
            for address in target.addresses
        ]
        async with asyncio.timeout_at(deadline):
            response = await _first_to_connect(client, requests)
        try:
            return await _read(response, deadline=deadline, limit=limit)
        finally:
            await response.aclose()


async def _first_to_connect(client: httpx.AsyncClient, requests: list[httpx.Request]) -> httpx.Response:
    """Send to each address in turn until one connects, as a socket connecting by name would."""
    *others, last = requests
    for request in others:
        try:
            return await client.send(request, stream=True)
        except httpx.ConnectError:
            continue
    return await client.send(last, stream=True)


async def _read(response: httpx.Response, *, deadline: float, limit: int) -> Answer:
    """Read the body a network chunk at a time, keeping at most ``limit`` bytes, until the deadline."""
    kept = bytearray()
    received = 0
    cut = ""
    try:
        async with asyncio.timeout_at(deadline):
            # Raw bytes: a compressed answer is never expanded in memory.
            async for chunk in response.aiter_raw():
                received += len(chunk)
                kept += chunk[: limit - len(kept)]
                if received > limit:
                    cut = f"cut after {limit} bytes"
                    break
    except TimeoutError:
        cut = "cut off: still arriving at the deadline"
    return Answer(status_code=response.status_code, body=bytes(kept), received=received, cut=cut)


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The Standard Webhooks signature: ``v1,`` + base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def cloudevent(event: Event, *, replay: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(event.position),
        "source": SOURCE,
        "type": event.type,
        "time": event.recorded_at.isoformat(),
        "datacontenttype": "application/json",
        "dataschemaversion": event.schema_version,
        "data": event.data,
    }
    if event.stream_id:
        body["subject"] = event.stream_id
    if replay:
        # A CloudEvents extension attribute: the receiver may have seen this event before (same webhook-id).
        body["replay"] = True
    return body


def published_types() -> frozenset[str]:
    return frozenset(name for name, event_type in catalog.items() if event_type.publish)


class WebhookPublisher(Subscriber):
    """Queues a delivery per interested active endpoint for every published event."""

    name: ClassVar[str] = "events.webhooks"
    batch_size: ClassVar[int] = 500

    def handle(self, events: Sequence[Event]) -> None:
        published = published_types()
        wanted = [event for event in events if event.type in published]
        if not wanted:
            return
        endpoints = list(WebhookEndpoint.objects.filter(active=True))
        deliveries = [
            delivery_of(endpoint, event.position, event.type)
            for event in wanted
            for endpoint in endpoints
            if endpoint.wants(event.type)
        ]
        if deliveries:
            WebhookDelivery.objects.bulk_create(deliveries)
            dispatch_on_commit()


def delivery_of(endpoint: WebhookEndpoint, position: int, event_type: str, *, replay: bool = False) -> WebhookDelivery:
    """A new delivery of the event at ``position``: its message id is the event's, whoever queues it."""
    return WebhookDelivery(
        endpoint=endpoint,
        event_id=position,
        event_position=position,
        event_type=event_type,
        message_id=f"evt_{position}",
        replay=replay,
    )


def dispatch_on_commit() -> None:
    """Send what is due once the current transaction has committed the deliveries."""
    enqueue_on_commit(DELIVER)


def retry_delay(attempts: int) -> timedelta:
    """Exponential backoff with full jitter: spreads retries of many failing deliveries over hours."""
    conf = events_settings()
    ceiling = min(conf.webhook_retry_base_seconds * 2 ** max(attempts - 1, 0), conf.webhook_retry_max_seconds)
    return timedelta(seconds=random.uniform(ceiling / 2, ceiling))


def claim_due(limit: int = 50) -> list[WebhookDelivery]:
    """Claim due deliveries with a conditional UPDATE each, so two senders never send the same one."""
    now = timezone.now()
    stale = now - CLAIM_TIMEOUT
    candidates = list(
        WebhookDelivery.objects.claimable(now, stale_before=stale)
        # A disabled endpoint's deliveries wait: re-enabling sends them, or gives them up (from now).
        .filter(endpoint__active=True)
        .order_by("next_attempt_at", "pk")
        .values_list("pk", "status", "claimed_at")[:limit]
    )
    claimed = []
    for pk, status, claimed_at in candidates:
        won = WebhookDelivery.objects.filter(pk=pk, status=status, claimed_at=claimed_at).update(
            status=WebhookDelivery.Status.SENDING, claimed_at=now
        )
        if won:
            claimed.append(pk)
    # In the order claimed: the model's default (newest first) would send a backlog backwards.
    return list(
        WebhookDelivery.objects.filter(pk__in=claimed)
        .select_related("endpoint", "event")
        .order_by("next_attempt_at", "pk")
    )


def _record(delivery: WebhookDelivery, *, ok: bool, status_code: int | None, error: str, response: str) -> None:
    conf = events_settings()
    endpoint = delivery.endpoint
    now = timezone.now()
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:2000]
    delivery.last_response = response
    delivery.claimed_at = None
    with transaction.atomic():
        # In the log, so the charts' success and latency per endpoint are rebuilt from it like every rollup.
        emit(
            WEBHOOK_ATTEMPTED,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            delivery_id=delivery.pk,
            ok=ok,
            ms=delivery.duration_ms or 0,
            status_code=status_code,
        )
        _count_attempt(endpoint.pk, ok=ok, duration_ms=delivery.duration_ms or 0, now=now)
        if ok:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = now
            delivery.save()
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
                failure_streak=0, failing_since=None, last_success_at=now
            )
            return
        gone = status_code == 410
        if gone or delivery.attempts >= conf.webhook_max_attempts:
            delivery.status = WebhookDelivery.Status.FAILED
        else:
            delivery.status = WebhookDelivery.Status.RETRYING
            delivery.next_attempt_at = now + retry_delay(delivery.attempts)
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            failure_streak=F("failure_streak") + 1,
            failing_since=Coalesce(F("failing_since"), Value(now)),
            last_error=error[:2000],
            last_error_at=now,
        )
        endpoint.refresh_from_db(fields=["failure_streak", "failing_since", "active"])
        reason = ""
        period = timedelta(hours=conf.webhook_disable_after_hours)
        if gone:
            reason = "The receiver answered 410 Gone."
        elif endpoint.failing_since is not None and endpoint.failing_since <= now - period:
            reason = (
                f"Nothing but failures for {conf.webhook_disable_after_hours:g} hours "
                f"({endpoint.failure_streak} failed attempts since {endpoint.failing_since:%Y-%m-%d %H:%M} UTC)."
            )
        if reason and endpoint.active:
            endpoint_disable(endpoint=endpoint, reason=reason)


def _count_attempt(endpoint_pk: int, *, ok: bool, duration_ms: int, now: datetime) -> None:
    """Add one attempt to the endpoint's row for this hour (created by whichever sender comes first)."""
    hour = now.replace(minute=0, second=0, microsecond=0)
    WebhookHealth.objects.get_or_create(endpoint_id=endpoint_pk, hour=hour)
    WebhookHealth.objects.filter(endpoint_id=endpoint_pk, hour=hour).update(
        attempts=F("attempts") + 1,
        succeeded=F("succeeded") + int(ok),
        total_ms=F("total_ms") + duration_ms,
        max_ms=Greatest(F("max_ms"), Value(duration_ms)),
    )


def send(delivery: WebhookDelivery, *, tls: ssl.SSLContext) -> bool:
    """One attempt; returns whether the receiver accepted it. Never raises for the receiver's faults."""
    endpoint = delivery.endpoint
    if delivery.event is None:
        _record(
            delivery, ok=False, status_code=None, error="The event was pruned before it could be sent.", response=""
        )
        return False
    outcome = attempt(
        endpoint, message_id=delivery.message_id, payload=cloudevent(delivery.event, replay=delivery.replay), tls=tls
    )
    delivery.duration_ms = outcome.duration_ms
    _record(delivery, ok=outcome.ok, status_code=outcome.status_code, error=outcome.error, response=outcome.response)
    log.info(
        "webhook.attempt",
        endpoint=endpoint.pk,
        position=delivery.event_position,
        ok=outcome.ok,
        status_code=outcome.status_code,
        response_bytes=outcome.received,
        error=outcome.error or None,
    )
    return outcome.ok


@dataclass(frozen=True)
class Outcome:
    """What one POST to an endpoint came to."""

    ok: bool
    status_code: int | None
    error: str
    response: str
    received: int | None
    duration_ms: int


def attempt(endpoint: WebhookEndpoint, *, message_id: str, payload: dict[str, Any], tls: ssl.SSLContext) -> Outcome:
    """Sign ``payload`` and POST it to the endpoint once; never raises for the receiver's faults."""
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/cloudevents+json; charset=utf-8",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        # Space-separated signatures, one per secret in use (Standard Webhooks): during a rotation a receiver
        # holding either secret finds its own.
        "webhook-signature": " ".join(sign(key, message_id, timestamp, body) for key in endpoint.signing_secrets()),
        "user-agent": "ops-console-webhooks/1",
        # The delivery log keeps the answer as sent; asking for no compression keeps it readable there.
        "accept-encoding": "identity",
    }
    started = time.perf_counter()
    status_code: int | None = None
    received: int | None = None
    error = response_text = ""
    try:
        answer = post(check_url(endpoint.url), content=body, headers=headers, tls=tls)
        status_code, received, response_text = answer.status_code, answer.received, answer.text
        ok = 200 <= status_code < 300
        if not ok:
            error = f"HTTP {status_code}"
    except UnsafeURL as exc:
        ok, error = False, str(exc)
    except TimeoutError:
        budget = events_settings().webhook_timeout_seconds
        ok, error = False, f"No answer within {budget:g} s (WEBHOOK_TIMEOUT_SECONDS)."
    except httpx.HTTPError as exc:
        ok, error = False, f"{exc.__class__.__name__}: {exc}"
    duration_ms = int((time.perf_counter() - started) * 1000)
    return Outcome(ok, status_code, error, response_text, received, duration_ms)


def send_sample(endpoint: WebhookEndpoint) -> Outcome:
    """POST a signed sample event to the endpoint, as a delivery would be; counted nowhere (a test)."""
    token = secrets.token_hex(8)
    payload = {
        "specversion": "1.0",
        "id": f"test_{token}",
        "source": SOURCE,
        "type": SAMPLE_TYPE,
        "time": timezone.now().isoformat(),
        "datacontenttype": "application/json",
        "data": {"endpoint": endpoint.name, "note": "A test event sent from the console."},
    }
    return attempt(endpoint, message_id=f"msg_test_{token}", payload=payload, tls=httpx.create_ssl_context())


def deliver_due(limit: int = 50) -> dict[str, int]:
    """Send what is due (claimed first); returns how many were sent and how many failed."""
    sent = failed = 0
    batch = claim_due(limit)
    if not batch:
        # The tick calls this every time: loading the trusted certificates is not free.
        return {"sent": sent, "failed": failed}
    tls = httpx.create_ssl_context()
    while batch:
        for delivery in batch:
            if send(delivery, tls=tls):
                sent += 1
            else:
                failed += 1
        batch = claim_due(limit) if len(batch) == limit else []
    return {"sent": sent, "failed": failed}


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> None:
    """Switch the endpoint off, note how far the publisher had read, emit the event and alert staff."""
    with transaction.atomic():
        now = timezone.now()
        position = Checkpoint.objects.filter(name=WebhookPublisher.name).values_list("position", flat=True).first()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(
            active=False, disabled_reason=reason[:300], disabled_at=now, disabled_position=position or 0
        )
        endpoint.active, endpoint.disabled_reason, endpoint.disabled_at = False, reason[:300], now
        endpoint.disabled_position = position or 0
        emit(
            WEBHOOK_DISABLED,
            **WebhookEndpoint.stream_of(endpoint.pk),
            endpoint_id=endpoint.pk,
            reason=reason,
        )
        name, pk = endpoint.name, endpoint.pk
        transaction.on_commit(lambda: alert_staff(name, pk, reason))


def alert_staff(name: str, pk: int, reason: str) -> None:
    """Mail the site's ADMINS; the console's banner says it too (``panels.disabled_banner``)."""
    try:
        mail_admins(
            f"Webhook endpoint “{name}” was disabled"[:200],
            f"{reason}\n\nRe-enable it in the console: /webhooks/{pk}/\n",
        )
    except (smtplib.SMTPException, OSError) as exc:
        log.error("webhook.alert_mail_failed", endpoint=pk, error=str(exc))
