"""What happened to one attempt, and how SMTP and HTTP answers are classified.

SMTP (RFC 5321, RFC 3463): 4yz is temporary (421 included); 5.1.x (addressing) and 5.2.1 (mailbox
disabled) blame the recipient; 5.2.2 (mailbox full) is temporary in practice; 5.7.x is policy, which is
about our reputation or configuration, so staff are alerted and the recipient is not blamed; any other 5yz
is a permanent infrastructure failure.

A failure is the provider's (``provider_fault``) when it says nothing about the recipient: the connection
was refused, dropped or timed out, an SMTP relay answered 421 (closing) or 454 (TLS/auth unavailable), or an
HTTP provider answered 5xx or 429. Those try the channel's next provider and count against its circuit
breaker; every other failure stays with the provider that gave it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from console.core.inputs import whole_number

SENT = "sent"
TEMPORARY = "temporary"
RECIPIENT = "recipient"
POLICY = "policy"
INFRASTRUCTURE = "infrastructure"

# The relay itself is unavailable (421: service closing; 454: TLS or authentication unavailable).
PROVIDER_SMTP_CODES = frozenset({421, 454})

_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Outcome:
    kind: str
    code: int | None = None
    enhanced_code: str = ""
    error: str = ""
    provider_id: str = ""
    retry_after: float | None = None
    # Which provider gave this outcome ("email:<alias>", "sms:<name>"), and whether it was the provider's fault.
    provider: str = ""
    provider_fault: bool = False

    @property
    def ok(self) -> bool:
        return self.kind == SENT


def enhanced_code(text: str) -> str:
    match = _ENHANCED.match(text)
    return ".".join(match.groups()) if match else ""


def _blames_recipient(code: int, enhanced: str) -> bool:
    if enhanced.startswith("5.1."):
        return enhanced not in ("5.1.7", "5.1.8")  # bad sender address: ours, not the recipient's
    return enhanced == "5.2.1" or (not enhanced and code in (550, 551, 553))


def classify_smtp(code: int, reply: bytes | str) -> Outcome:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    enhanced = enhanced_code(text)
    error = f"{code} {text}".strip()
    if code in PROVIDER_SMTP_CODES:
        return Outcome(TEMPORARY, code=code, enhanced_code=enhanced, error=error[:1000], provider_fault=True)
    if 400 <= code < 500 or enhanced.startswith("4."):
        kind = TEMPORARY
    elif enhanced.startswith("5.7."):
        kind = POLICY
    elif enhanced == "5.2.2":
        kind = TEMPORARY
    elif _blames_recipient(code, enhanced):
        kind = RECIPIENT
    elif 500 <= code < 600:
        kind = INFRASTRUCTURE
    else:
        kind = TEMPORARY
    return Outcome(kind, code=code, enhanced_code=enhanced, error=error[:1000])


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    seconds = whole_number(value)
    if seconds is not None:
        return float(seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_http(status: int, body: str, retry_after: str | None) -> Outcome:
    error = f"HTTP {status}: {body[:300]}"
    if status == 429 or status >= 500 or status == 408:
        return Outcome(
            TEMPORARY,
            code=status,
            error=error,
            retry_after=parse_retry_after(retry_after),
            provider_fault=status != 408,
        )
    if status in (400, 404, 410, 422):
        return Outcome(RECIPIENT, code=status, error=error)
    if status == 403:
        return Outcome(POLICY, code=status, error=error)
    return Outcome(INFRASTRUCTURE, code=status, error=error)
