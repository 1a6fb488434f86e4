"""Publishing the log to webhook endpoints.

The ``events.webhooks`` subscriber turns each published event into one delivery row per interested endpoint,
in the transaction that moves its checkpoint: the log is the outbox, so a rolled-back change is never sent
and a committed one is never forgotten. Sending happens later, outside any transaction, in a task: CloudEvents
1.0 JSON bodies signed the Standard Webhooks way, retried with exponential backoff and full jitter, and the
endpoint switched off after a 410 or a long failure streak.

An attempt resolves the endpoint's host once, checks every address, and connects only to those addresses, so
an answer that changes in between (DNS rebinding) cannot point it elsewhere; it has one deadline for the
whole exchange and reads at most a fixed number of bytes of the answer.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import random
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import httpx
import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from console.events.catalog import catalog
from console.events.conf import events_settings
from console.events.declarations import (
    WEBHOOK_CREATED,
    WEBHOOK_DELIVERY_RESENT,
    WEBHOOK_DISABLED,
    WEBHOOK_UPDATED,
)
from console.events.models import Event, WebhookDelivery, WebhookEndpoint
from console.events.pipeline import emit
from console.events.subscriptions import Subscriber

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

log = structlog.get_logger(__name__)

SOURCE = "/console/events"
# A claimed delivery whose sender died is handed out again after this long.
CLAIM_TIMEOUT = timedelta(minutes=5)


class UnsafeURL(ValueError):
    """A webhook URL that is malformed, not http(s), or resolves to an address we must not call."""


Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# IPv6 forms that carry an IPv4 address in their last 32 bits, reached through a translator or tunnel:
# IPv4-compatible (::a.b.c.d, deprecated) and NAT64's well-known prefix (RFC 6052). IPv4-mapped addresses have
# their own property on IPv6Address.
IPV4_IN_LAST_32_BITS = (ipaddress.IPv6Network("::/96"), ipaddress.IPv6Network("64:ff9b::/96"))
# Never public, whichever IPv4 address they carry. NAT64's local-use prefix (RFC 8215) only reaches the
# operator's own network, at a place in the address that depends on the operator's prefix length. 6to4
# (2002::/16, deprecated by RFC 7526) goes through whichever relay is nearest; Python 3.13 calls all of it
# non-global while 3.12 calls all of it global, and refusing it keeps both the same.
NEVER_PUBLIC = (ipaddress.IPv6Network("64:ff9b:1::/48"), ipaddress.IPv6Network("2002::/16"))


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, IPv4-compatible, NAT64), if it carries one."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in prefix for prefix in IPV4_IN_LAST_32_BITS):
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def is_public(address: Address) -> bool:
    """Whether an address is on the public internet, an IPv6 one judged by the IPv4 address it carries too.

    ``is_global`` alone is not enough: Python 3.12 calls ``::127.0.0.1``, ``64:ff9b::a00:1`` and
    ``2002:c0a8:101::`` global, yet they lead to loopback, 10.0.0.1 and 192.168.1.1.
    """
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        if any(address in prefix for prefix in NEVER_PUBLIC):
            return False
        inner = embedded_ipv4(address)
        return inner is None or is_public(inner)
    return True


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses its host had when it was checked: the only ones an attempt connects to."""

    url: httpx.URL
    addresses: tuple[Address, ...]


def _resolve(host: str, port: int) -> tuple[Address, ...]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeURL(f"The host {host!r} does not resolve.") from exc
    # The resolver's order is the order a connecting socket would try them in.
    return tuple(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def check_url(url: str) -> Target:
    """Resolve the URL's host once and check every address it has.

    Refuses malformed and non-http(s) URLs and, unless ``WEBHOOK_ALLOW_PRIVATE``, any address that is not
    public (see ``is_public``).
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeURL(f"This is not a valid URL ({exc}).") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UnsafeURL("Use an http:// or https:// URL with a host name.")
    port = parsed.port if parsed.port is not None else 443 if parsed.scheme == "https" else 80
    if not 1 <= port <= 65535:
        raise UnsafeURL(f"The port must be between 1 and 65535, not {port}.")
    host = parsed.raw_host.decode("ascii")
    try:
        addresses: tuple[Address, ...] = (ipaddress.ip_address(host),)
        resolved = False
    except ValueError:
        addresses = _resolve(host, port)
        resolved = True
    if not events_settings().webhook_allow_private:
        for address in addresses:
            if not is_public(address):
                subject = f"{host} resolves to {address}, which" if resolved else str(address)
                raise UnsafeURL(f"{subject} is a private or reserved address; that is not allowed.")
    return Target(url=parsed, addresses=addresses)


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
    return asyncio.run(
        _post(
            target,
            content=content,
            headers=headers,
            tls=tls,
            budget=conf.webhook_timeout_seconds,
            limit=conf.webhook_response_max_bytes,
        )
    )


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


def cloudevent(event: Event) -> dict[str, Any]:
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
            WebhookDelivery(
                endpoint=endpoint,
                event=event,
                event_position=event.position,
                event_type=event.type,
                message_id=f"evt_{event.position}",
            )
            for event in wanted
            for endpoint in endpoints
            if endpoint.wants(event.type)
        ]
        if deliveries:
            WebhookDelivery.objects.bulk_create(deliveries)
            dispatch_on_commit()


def _send_due() -> None:
    from console.events.tasks import deliver_webhooks

    deliver_webhooks.enqueue()


def dispatch_on_commit() -> None:
    transaction.on_commit(_send_due)


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
    return list(WebhookDelivery.objects.filter(pk__in=claimed).select_related("endpoint", "event"))


def _record(delivery: WebhookDelivery, *, ok: bool, status_code: int | None, error: str, response: str) -> None:
    conf = events_settings()
    endpoint = delivery.endpoint
    delivery.attempts += 1
    delivery.last_status_code = status_code
    delivery.last_error = error[:2000]
    delivery.last_response = response
    delivery.claimed_at = None
    with transaction.atomic():
        if ok:
            delivery.status = WebhookDelivery.Status.SUCCEEDED
            delivery.delivered_at = timezone.now()
            delivery.save()
            WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=0)
            return
        gone = status_code == 410
        if gone or delivery.attempts >= conf.webhook_max_attempts:
            delivery.status = WebhookDelivery.Status.FAILED
        else:
            delivery.status = WebhookDelivery.Status.RETRYING
            delivery.next_attempt_at = timezone.now() + retry_delay(delivery.attempts)
        delivery.save()
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(failure_streak=F("failure_streak") + 1)
        endpoint.refresh_from_db(fields=["failure_streak", "active"])
        reason = ""
        if gone:
            reason = "The receiver answered 410 Gone."
        elif endpoint.failure_streak >= conf.webhook_disable_after_failures:
            reason = f"{endpoint.failure_streak} failed attempts in a row."
        if reason and endpoint.active:
            endpoint_disable(endpoint=endpoint, reason=reason)


def send(delivery: WebhookDelivery, *, tls: ssl.SSLContext) -> bool:
    """One attempt; returns whether the receiver accepted it. Never raises for the receiver's faults."""
    endpoint = delivery.endpoint
    if delivery.event is None:
        _record(
            delivery, ok=False, status_code=None, error="The event was pruned before it could be sent.", response=""
        )
        return False
    body = json.dumps(cloudevent(delivery.event), separators=(",", ":"), default=str).encode()
    timestamp = int(time.time())
    headers = {
        "content-type": "application/cloudevents+json; charset=utf-8",
        "webhook-id": delivery.message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(endpoint.secret, delivery.message_id, timestamp, body),
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
    delivery.duration_ms = int((time.perf_counter() - started) * 1000)
    _record(delivery, ok=ok, status_code=status_code, error=error, response=response_text)
    log.info(
        "webhook.attempt",
        endpoint=endpoint.pk,
        position=delivery.event_position,
        ok=ok,
        status_code=status_code,
        response_bytes=received,
        error=error or None,
    )
    return ok


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


# --- write functions (views and forms call these) -------------------------------------------------------------


def webhook_create(
    *, actor: AbstractBaseUser, name: str, url: str, event_types: list[str], active: bool = True
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.create(
            name=name, url=url, event_types=sorted(event_types), active=active, created_by_id=actor.pk
        )
        emit(
            WEBHOOK_CREATED,
            actor=actor,
            stream_type="webhook",
            stream_id=f"webhook-{endpoint.pk}",
            endpoint_id=endpoint.pk,
            name=name,
            url=url,
            event_types=endpoint.event_types,
        )
    return endpoint


def webhook_update(
    *, actor: AbstractBaseUser, endpoint: WebhookEndpoint, name: str, url: str, event_types: list[str], active: bool
) -> WebhookEndpoint:
    with transaction.atomic():
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=endpoint.pk)
        changed = sorted(
            key
            for key, value in (("name", name), ("url", url), ("event_types", sorted(event_types)), ("active", active))
            if getattr(endpoint, key) != value
        )
        endpoint.name, endpoint.url, endpoint.event_types = name, url, sorted(event_types)
        if active and not endpoint.active:
            endpoint.disabled_reason = ""
            endpoint.failure_streak = 0
        endpoint.active = active
        endpoint.save()
        emit(
            WEBHOOK_UPDATED,
            actor=actor,
            stream_type="webhook",
            stream_id=f"webhook-{endpoint.pk}",
            endpoint_id=endpoint.pk,
            changed=changed,
        )
    return endpoint


def endpoint_disable(*, endpoint: WebhookEndpoint, reason: str) -> None:
    with transaction.atomic():
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False, disabled_reason=reason[:300])
        endpoint.active, endpoint.disabled_reason = False, reason[:300]
        emit(
            WEBHOOK_DISABLED,
            stream_type="webhook",
            stream_id=f"webhook-{endpoint.pk}",
            endpoint_id=endpoint.pk,
            reason=reason,
        )


def delivery_resend(*, actor: AbstractBaseUser, delivery: WebhookDelivery) -> WebhookDelivery:
    """Queue the same event to the same endpoint again, as a new delivery with the same message id."""
    with transaction.atomic():
        again = WebhookDelivery.objects.create(
            endpoint=delivery.endpoint,
            event=delivery.event,
            event_position=delivery.event_position,
            event_type=delivery.event_type,
            message_id=delivery.message_id,
        )
        emit(
            WEBHOOK_DELIVERY_RESENT,
            actor=actor,
            stream_type="webhook",
            stream_id=f"webhook-{delivery.endpoint_id}",
            endpoint_id=delivery.endpoint_id,
            delivery_id=again.pk,
            resent_from=delivery.pk,
            position=delivery.event_position,
        )
        dispatch_on_commit()
    return again
