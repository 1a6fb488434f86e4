"""Why a message was not delivered, in words staff can act on."""

from __future__ import annotations

from django.utils import timezone

from console.comms.models import Attempt, Delivery, FailureClass, Message, Status

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
    if message.held_until and message.status == Status.QUEUED and message.held_until > timezone.now():
        lines.append(
            f"Waiting until {message.held_until:%Y-%m-%d %H:%M} UTC, when its send window opens "
            f"({message.hold_reason}); it still expires at {message.expires_at:%Y-%m-%d %H:%M} UTC."
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
            lines.append(f"{label} is {delivery.get_status_display().lower()}.")
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
