"""Message history for the demo: sent, delivered, retrying, and failures of every class.

Rows are written directly (bulk), not sent, so seeding is fast and a running worker has nothing to resend;
each demo message carries the idempotency key ``demo-<n>``, so running the seed again adds only what is
missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.comms.classes import MessageClass, Rendered, lookup
from console.comms.models import (
    Alert,
    Attempt,
    ContactPoint,
    ContactState,
    Delivery,
    FailureClass,
    Message,
    Status,
)
from console.demo.seeds import SeedOptions

ORDER = 50
CHUNK = 2000


@dataclass(frozen=True)
class Step:
    channel: str
    status: str
    failure: str = ""
    code: int | None = None
    reply: str = ""
    attempts: int = 1


@dataclass(frozen=True)
class Scenario:
    message_type: str
    status: str
    failure: str
    steps: tuple[Step, ...]
    phone: bool = True


SENT = Step("email", Status.SENT, code=250)
SCENARIOS = (
    Scenario("order_confirmation", Status.SENT, "", (SENT,)),
    Scenario("order_confirmation", Status.DELIVERED, "", (Step("email", Status.DELIVERED, code=250),)),
    Scenario(
        "order_confirmation",
        Status.SENT,
        "",
        (
            Step("email", Status.FAILED, FailureClass.RECIPIENT, 550, "5.1.1 user unknown"),
            Step("sms", Status.SENT),
        ),
    ),
    Scenario(
        "order_confirmation",
        Status.FAILED,
        FailureClass.POLICY,
        (Step("email", Status.FAILED, FailureClass.POLICY, 550, "5.7.1 rejected: sender on blocklist"),),
        phone=False,
    ),
    Scenario(
        "order_confirmation",
        Status.FAILED,
        FailureClass.TEMPORARY,
        (Step("email", Status.FAILED, FailureClass.TEMPORARY, 451, "4.3.0 mail server busy", attempts=8),),
        phone=False,
    ),
    Scenario("shipping_update", Status.SENT, "", (Step("push", Status.SENT),)),
    Scenario(
        "shipping_update",
        Status.FAILED,
        FailureClass.INFRASTRUCTURE,
        (Step("push", Status.FAILED, FailureClass.INFRASTRUCTURE, 500, "provider account suspended"),),
        phone=False,
    ),
    Scenario(
        "password_reset",
        Status.FAILED,
        FailureClass.RECIPIENT,
        (Step("email", Status.FAILED, FailureClass.RECIPIENT, 550, "5.1.1 mailbox does not exist"),),
    ),
    Scenario(
        "password_reset", Status.FAILED, FailureClass.EXPIRED, (Step("email", Status.SKIPPED, FailureClass.EXPIRED),)
    ),
    Scenario(
        "order_confirmation",
        Status.DEFERRED,
        "",
        (Step("email", Status.DEFERRED, "", 450, "4.2.0 mailbox busy, try later", attempts=2),),
    ),
    Scenario(
        "order_confirmation",
        Status.FAILED,
        FailureClass.COMPLAINED,
        (Step("email", Status.FAILED, FailureClass.COMPLAINED, None, "complaint reported by the provider"),),
        phone=False,
    ),
    Scenario("order_confirmation", Status.SENT, "", (SENT,)),
)
NAMES = ("ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "radia", "linus")


def _rendered(cache: dict[str, tuple[type[MessageClass], Rendered]], key: str) -> tuple[type[MessageClass], Rendered]:
    if key not in cache:
        cls = lookup(key)
        if cls is None:
            raise LookupError(f"demo message class {key!r} is not registered")
        cache[key] = (cls, cls.sample().render())
    return cache[key]


def seed(options: SeedOptions) -> str:
    existing = set(
        Message.objects.filter(idempotency_key__startswith="demo-").values_list("idempotency_key", flat=True)
    )
    wanted = [n for n in range(options.messages) if f"demo-{n}" not in existing]
    cache: dict[str, tuple[type[MessageClass], Rendered]] = {}
    now = timezone.now()
    for start in range(0, len(wanted), CHUNK):
        with transaction.atomic():
            _create(wanted[start : start + CHUNK], cache, now, options.messages)
    with transaction.atomic():
        defunct = _contacts()
        alerts = _alerts()
    return (
        f"{len(wanted)} message(s) created ({len(existing)} already there), "
        f"{defunct} defunct contact(s), {alerts} alert(s)"
    )


def _create(numbers: list[int], cache: dict[str, tuple[type[MessageClass], Rendered]], now: Any, total: int) -> None:
    messages: list[Message] = []
    plans: list[Scenario] = []
    for n in numbers:
        scenario = SCENARIOS[n % len(SCENARIOS)]
        cls, rendered = _rendered(cache, scenario.message_type)
        name = NAMES[n % len(NAMES)]
        email = f"{name}{n % 97}@example.com"
        addresses = {"email": email, "push": f"push-{name}-{n % 97}"}
        if scenario.phone:
            addresses["sms"] = f"+4477009{n % 100000:05d}"
        # Spread the history over the last 30 days, newest last.
        created = now - timedelta(seconds=int((total - n) * 30 * 86400 / max(total, 1)))
        expired = scenario.failure == FailureClass.EXPIRED
        messages.append(
            Message(
                message_type=cls.key,
                category=cls.category,
                mandatory=cls.mandatory,
                recipient=email,
                addresses=addresses,
                channels=[c for c in cls.channels if c in addresses],
                context=cls.sample_context,
                subject=rendered.subject,
                text_body=rendered.text,
                html_body=rendered.html,
                sms_text=rendered.sms,
                push_title=rendered.push_title,
                push_body=rendered.push_body,
                status=scenario.status,
                failure_class=scenario.failure,
                channel=scenario.steps[-1].channel,
                idempotency_key=f"demo-{n}",
                created_at=created,
                send_at=created,
                expires_at=created + (cls.ttl if expired else max(cls.ttl, now - created + timedelta(days=1))),
            )
        )
        plans.append(scenario)
    Message.objects.bulk_create(messages, batch_size=500)
    deliveries: list[Delivery] = []
    for message, scenario in zip(messages, plans, strict=True):
        for step in scenario.steps:
            deliveries.append(
                Delivery(
                    message=message,
                    channel=step.channel,
                    address=message.addresses[step.channel],
                    status=step.status,
                    failure_class=step.failure,
                    reason=f"{step.code or ''} {step.reply}".strip(),
                    attempts=0 if step.status == Status.SKIPPED else step.attempts,
                    next_attempt_at=message.created_at + timedelta(hours=6)
                    if step.status == Status.DEFERRED
                    else message.created_at,
                    provider_id=f"demo-{message.idempotency_key}-{step.channel}"
                    if step.status in (Status.SENT, Status.DELIVERED)
                    else "",
                    created_at=message.created_at,
                    sent_at=message.created_at if step.status in (Status.SENT, Status.DELIVERED) else None,
                )
            )
    Delivery.objects.bulk_create(deliveries, batch_size=500)
    attempts: list[Attempt] = []
    outcome_of = {
        FailureClass.RECIPIENT: Attempt.Outcome.RECIPIENT,
        FailureClass.POLICY: Attempt.Outcome.POLICY,
        FailureClass.INFRASTRUCTURE: Attempt.Outcome.INFRASTRUCTURE,
        FailureClass.COMPLAINED: Attempt.Outcome.RECIPIENT,
    }
    for delivery in deliveries:
        if delivery.status == Status.SKIPPED:
            continue
        for i in range(delivery.attempts):
            last = i == delivery.attempts - 1
            ok = delivery.status in (Status.SENT, Status.DELIVERED) and last
            attempts.append(
                Attempt(
                    delivery=delivery,
                    at=delivery.created_at + timedelta(minutes=2**i - 1),
                    channel=delivery.channel,
                    address=delivery.address,
                    outcome=Attempt.Outcome.SENT
                    if ok
                    else outcome_of.get(FailureClass(delivery.failure_class), Attempt.Outcome.TEMPORARY)
                    if delivery.failure_class
                    else Attempt.Outcome.TEMPORARY,
                    code=int(delivery.reason[:3]) if delivery.reason[:3].isdigit() else None,
                    enhanced_code=delivery.reason[4:9] if delivery.reason[4:5].isdigit() else "",
                    provider_id=delivery.provider_id if ok else "",
                    error="" if ok else delivery.reason,
                )
            )
    Attempt.objects.bulk_create(attempts, batch_size=1000)


def _contacts() -> int:
    """Addresses the seeded history proved defunct (user unknown, complaints)."""
    failed = (
        Delivery.objects.filter(
            message__idempotency_key__startswith="demo-",
            failure_class__in=(FailureClass.RECIPIENT, FailureClass.COMPLAINED),
        )
        .values_list("channel", "address", "reason")
        .distinct()[:500]
    )
    created = 0
    for channel, address, reason in failed:
        _, was_created = ContactPoint.objects.get_or_create(
            channel=channel,
            address=address,
            defaults={"state": ContactState.DEFUNCT, "reason": reason[:200], "evidence": {"source": "demo history"}},
        )
        created += was_created
    return created


def _alerts() -> int:
    if Alert.objects.filter(text__startswith="Demo:").exists():
        return 0
    latest = Message.objects.filter(idempotency_key__startswith="demo-", mandatory=True, status=Status.FAILED).first()
    if latest is None:
        return 0
    Alert.objects.create(
        kind="mandatory_failed", message=latest, text=f"Demo: mandatory message #{latest.pk} was not delivered"
    )
    return 1
