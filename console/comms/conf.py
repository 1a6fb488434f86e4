"""The comms app's settings: ``CONSOLE_COMMS`` in the site's settings, read with defaults, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, register

from console.core.conf import AT_LEAST_ZERO, POSITIVE, AppSettings

LOG_PROVIDER: dict[str, Any] = {"CLASS": "console.comms.providers.LogProvider", "OPTIONS": {}}


@dataclass(frozen=True)
class CommsSettings(AppSettings):
    SETTING = "CONSOLE_COMMS"
    CHECK_ID = "console.comms"

    # Where the "a mandatory message could not be delivered" alert goes; empty means settings.ADMINS.
    alert_emails: tuple[str, ...] = ()
    # The mailer alias (Django's MAILERS) the alert is sent through.
    alert_mailer: str = "default"
    # Retries of temporary failures: exponential backoff with full jitter, capped, never past the expiry.
    max_attempts: int = field(default=8, metadata=POSITIVE)
    backoff_base_seconds: float = field(default=30.0, metadata=AT_LEAST_ZERO)
    backoff_cap_seconds: float = field(default=3600.0, metadata=POSITIVE)
    # Temporary failures in a row after which a contact point is marked soft-failing.
    soft_fail_after: int = field(default=3, metadata=POSITIVE)
    # A queued delivery nobody picked up for this long is re-dispatched by the reconciler; a delivery left
    # "sending" longer than the lease belonged to a worker that died mid-send.
    reconcile_after_seconds: int = field(default=30, metadata=POSITIVE)
    sending_lease_seconds: int = field(default=300, metadata=POSITIVE)
    batch_size: int = field(default=100, metadata=POSITIVE)
    # Deliveries committed by separate transactions within this many seconds of each other are sent by one
    # task (per web process): the first right away, the rest by one sweep at the window's end. 0: no coalescing.
    dispatch_window_seconds: float = field(default=0.25, metadata=AT_LEAST_ZERO)
    # SMS and push providers: {"CLASS": dotted path, "OPTIONS": keyword arguments}.
    sms_provider: dict[str, Any] = field(default_factory=lambda: dict(LOG_PROVIDER))
    push_provider: dict[str, Any] = field(default_factory=lambda: dict(LOG_PROVIDER))
    # Failover: the providers tried, in order, after a channel's first one fails at the provider level
    # (refused, timeout, 421/454, HTTP 5xx or 429). Email: mailer alias -> further MAILERS aliases; SMS and
    # push: further adapters, each {"CLASS", "OPTIONS", optional "NAME"}.
    mailer_failover: dict[str, tuple[str, ...]] = field(default_factory=dict)
    sms_failover: tuple[dict[str, Any], ...] = ()
    push_failover: tuple[dict[str, Any], ...] = ()
    # Circuit breaker per provider: opens after this many provider-level failures in a row, and lets one
    # probe message through every BREAKER_RESET_SECONDS until one succeeds (which closes it).
    breaker_failures: int = field(default=5, metadata=POSITIVE)
    breaker_reset_seconds: float = field(default=30.0, metadata=POSITIVE)
    # Messages per second per provider ("email:<alias>", "sms:<name>", "push:<name>"), for all workers together.
    provider_rates: dict[str, float] = field(default_factory=dict)
    # Shared secret of the provider event endpoint (HMAC-SHA256 of the body); empty disables the endpoint.
    inbound_secret: str = ""
    # Where recipients reach the console's unsubscribe page ("https://example.com"): with it set, messages
    # of non-mandatory classes carry a signed link (``unsubscribe_url`` in their templates) and emails the
    # List-Unsubscribe headers. Empty: no link and no headers.
    unsubscribe_base_url: str = ""
    unsubscribe_link_days: int = field(default=60, metadata=POSITIVE)
    # Quiet hours per message category: {"marketing": ["08:00", "21:00"]}, in the recipient's time zone; a
    # message due outside waits for the window. A class's own send_window wins; mandatory and time-critical
    # classes never wait.
    send_windows: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # The staff banner about failed mandatory messages looks back this many hours.
    banner_hours: int = field(default=24, metadata=POSITIVE)

    def problems(self) -> list[str]:
        found = [
            f"{key} must be a dict with a CLASS dotted path and optional OPTIONS."
            for key, value in (("SMS_PROVIDER", self.sms_provider), ("PUSH_PROVIDER", self.push_provider))
            if not isinstance(value.get("CLASS"), str) or not isinstance(value.get("OPTIONS", {}), dict)
        ]
        for key, adapters in (("SMS_FAILOVER", self.sms_failover), ("PUSH_FAILOVER", self.push_failover)):
            found.extend(
                f"{key} entries must be dicts with a CLASS dotted path and optional OPTIONS and NAME."
                for value in adapters
                if not isinstance(value.get("CLASS"), str)
                or not isinstance(value.get("OPTIONS", {}), dict)
                or not isinstance(value.get("NAME", ""), str)
            )
        found.extend(
            f"PROVIDER_RATES[{name!r}] must be more than zero."
            for name, rate in self.provider_rates.items()
            if rate <= 0
        )
        # Without MAILERS (and always on Django 6.0), the "default" mailer is built from the EMAIL_* settings.
        known = getattr(settings, "MAILERS", None) or {"default": {}}
        if self.alert_mailer not in known:
            found.append(f"ALERT_MAILER {self.alert_mailer!r} is not one of the site's MAILERS.")
        for category, window in self.send_windows.items():
            if not (isinstance(window, list | tuple) and len(window) == 2 and all(map(_clock_time, window))):
                found.append(f'SEND_WINDOWS[{category!r}] must be two times of day, such as ["08:00", "21:00"].')
        if self.unsubscribe_base_url and not self.unsubscribe_base_url.startswith(("https://", "http://")):
            found.append("UNSUBSCRIBE_BASE_URL must be an absolute http(s) URL, such as https://example.com.")
        found.extend(
            f"MAILER_FAILOVER names {alias!r}, which is not one of the site's MAILERS."
            for alias in sorted({a for first, rest in self.mailer_failover.items() for a in (first, *rest)})
            if alias not in known
        )
        return found


comms_settings = CommsSettings.load


def _clock_time(text: object) -> bool:
    try:
        time.fromisoformat(str(text))
    except ValueError:
        return False
    return isinstance(text, str)


def alert_recipients() -> list[str]:
    configured = list(comms_settings().alert_emails)
    if configured:
        return configured
    # Django 6 takes ADMINS as plain addresses; (name, address) pairs still work there until 2028, with a
    # deprecation warning, so a host site that has not switched yet still gets its alerts.
    return [entry if isinstance(entry, str) else entry[1] for entry in getattr(settings, "ADMINS", [])]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return CommsSettings.check()
