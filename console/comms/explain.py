"""Why a message was not delivered, and why each step of its timeline was taken, in words staff can act on."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from console.comms.models import Attempt, Delivery, FailureClass, Message, Status
from console.comms.routing import QUIET_HOURS

_CLASS_WORDS = {
    FailureClass.TEMPORARY: "the provider kept answering with temporary failures until retries ran out",
    FailureClass.RECIPIENT: "the provider said the address does not exist or cannot receive mail; it is now defunct",
    FailureClass.POLICY: (
        "the provider refused it for policy reasons (our sending reputation or configuration, not the "
        "recipient); staff were alerted"
    ),
    FailureClass.INFRASTRUCTURE: "the provider failed permanently for a reason that is not about the recipient",
    FailureClass.EXPIRED: "it expired before it could be sent",
    FailureClass.NO_CONTACT: "there was no usable address on any allowed channel",
    FailureClass.PREFERENCE: "the recipient opted out of every channel this message may use",
    FailureClass.COMPLAINED: "the recipient marked an earlier message as spam",
}


def explain(message: Message, deliveries: list[Delivery], attempts: list[Attempt]) -> list[str]:
    """One sentence per channel tried, then the overall verdict; empty when the message went out."""
    if message.status in (Status.SENT, Status.DELIVERED):
        return []
    lines: list[str] = []
    waiting = message.status in (Status.QUEUED, Status.DEFERRED)
    if message.held_until and waiting and message.held_until > timezone.now():
        step = "Its next retry is held" if message.status == Status.DEFERRED else "Waiting"
        lines.append(
            f"{step} until {message.held_until:%Y-%m-%d %H:%M} UTC, when its send window opens "
            f"({message.hold_reason}); it still expires at "
            f"{message.expires_at:%Y-%m-%d %H:%M} UTC."
        )
    last_by_delivery = {a.delivery_id: a for a in attempts}
    for delivery in deliveries:
        label = f"{delivery.get_channel_display()} to {delivery.address or '(no address)'}"
        attempt = last_by_delivery.get(delivery.pk)
        code = ""
        if attempt and attempt.code:
            code = f" (last answer: {attempt.code}{' ' + attempt.enhanced_code if attempt.enhanced_code else ''})"
        if delivery.status == Status.SKIPPED:
            lines.append(f"{label} was skipped: {delivery.reason or delivery.get_failure_class_display()}.")
        elif delivery.status == Status.FAILED:
            words = (
                _CLASS_WORDS.get(FailureClass(delivery.failure_class), delivery.reason)
                if delivery.failure_class
                else delivery.reason
            )
            lines.append(f"{label} failed after {delivery.attempts} attempt(s): {words}{code}.")
        elif delivery.status == Status.DEFERRED:
            lines.append(
                f"{label} is retrying: attempt {delivery.attempts} failed temporarily{code}; next try at "
                f"{delivery.next_attempt_at:%Y-%m-%d %H:%M:%S} UTC."
            )
        elif delivery.status in (Status.QUEUED, Status.SENDING, Status.PENDING):
            held = f" ({delivery.reason})" if delivery.reason.startswith(QUIET_HOURS) else ""
            lines.append(f"{label} is {delivery.get_status_display().lower()}{held}.")
    if message.status == Status.FAILED:
        verdict = _CLASS_WORDS.get(FailureClass(message.failure_class), "") if message.failure_class else ""
        lines.append(
            "Not delivered: "
            + (verdict or "every allowed channel failed")
            + "."
            + (" This message is mandatory: staff were alerted." if message.mandatory else "")
        )
    elif message.status == Status.SKIPPED:
        lines.append(
            "Not sent: " + _CLASS_WORDS.get(FailureClass(message.failure_class or "preference"), "skipped") + "."
        )
    return lines


@dataclass(frozen=True)
class Step:
    """One row of a message's timeline: a delivery (a channel taken) or an attempt on it, and why it happened."""

    kind: str  # "delivery" or "attempt"
    at: datetime
    channel: str
    address: str
    outcome: str
    css: str
    code: str
    provider: str
    why: str
    detail: str


def _delivery_why(message: Message, delivery: Delivery, earlier: list[Delivery]) -> str:
    if delivery.failure_class == FailureClass.PREFERENCE:
        return "preference: the recipient turned this channel off"
    # A resend or a fallback due outside the send window waited for it: its reason says so until a retry.
    held = ""
    if delivery.reason.startswith(QUIET_HOURS) and delivery.failure_class != FailureClass.EXPIRED:
        held = f"; held for quiet hours until {delivery.next_attempt_at:%Y-%m-%d %H:%M} UTC"
    if any(d.channel == delivery.channel for d in earlier):
        return "resent by staff" + held
    previous = [d for d in earlier if d.failure_class != FailureClass.PREFERENCE]
    if previous:
        last = previous[-1]
        failed = last.get_failure_class_display().lower() if last.failure_class else last.get_status_display().lower()
        return f"fallback: {last.get_channel_display()} did not deliver ({failed}){held}"
    if message.held_until and delivery.next_attempt_at == message.held_until:
        return f"first channel; held for quiet hours until {message.held_until:%Y-%m-%d %H:%M} UTC"
    if message.send_at > message.created_at:
        return f"first channel; scheduled for {message.send_at:%Y-%m-%d %H:%M} UTC"
    return "first channel the message may use"


def timeline(message: Message, deliveries: list[Delivery], attempts: list[Attempt]) -> list[Step]:
    """Every channel taken and every attempt on it, in order, each with why that step was taken."""
    steps: list[Step] = []
    for index, delivery in enumerate(deliveries):
        steps.append(
            Step(
                kind="delivery",
                at=delivery.created_at,
                channel=delivery.get_channel_display(),
                address=delivery.address,
                outcome=delivery.get_status_display(),
                css=delivery.status,
                code="",
                provider="",
                why=_delivery_why(message, delivery, deliveries[:index]),
                detail=delivery.reason,
            )
        )
        previous: Attempt | None = None
        for attempt in (a for a in attempts if a.delivery_id == delivery.pk):
            if previous is None:
                why = "first attempt"
            elif previous.error.startswith(Attempt.FAILED_OVER):
                why = f"failover: {previous.provider or 'the previous provider'} failed at the provider level"
            elif previous.outcome == Attempt.Outcome.TEMPORARY:
                why = f"retry after a temporary failure{f' ({previous.code})' if previous.code else ''}"
            else:
                why = "sent again"
            steps.append(
                Step(
                    kind="attempt",
                    at=attempt.at,
                    channel=attempt.get_channel_display(),
                    address=attempt.address,
                    outcome=attempt.get_outcome_display(),
                    css=attempt.outcome,
                    code=f"{attempt.code or ''} {attempt.enhanced_code}".strip(),
                    provider=" ".join(filter(None, [attempt.provider, attempt.provider_id])),
                    why=why,
                    detail=attempt.error,
                )
            )
            previous = attempt
    return steps
