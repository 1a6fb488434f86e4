"""The comms app's settings: ``CONSOLE_COMMS`` in the site's settings, read with defaults, checked at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
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
    # SMS and push providers: {"CLASS": dotted path, "OPTIONS": keyword arguments}.
    sms_provider: dict[str, Any] = field(default_factory=lambda: dict(LOG_PROVIDER))
    push_provider: dict[str, Any] = field(default_factory=lambda: dict(LOG_PROVIDER))
    # Shared secret of the provider event endpoint (HMAC-SHA256 of the body); empty disables the endpoint.
    inbound_secret: str = ""
    # The staff banner about failed mandatory messages looks back this many hours.
    banner_hours: int = field(default=24, metadata=POSITIVE)

    def problems(self) -> list[str]:
        found = [
            f"{key} must be a dict with a CLASS dotted path and optional OPTIONS."
            for key, value in (("SMS_PROVIDER", self.sms_provider), ("PUSH_PROVIDER", self.push_provider))
            if not isinstance(value.get("CLASS"), str) or not isinstance(value.get("OPTIONS", {}), dict)
        ]
        # Without MAILERS (and always on Django 6.0), the "default" mailer is built from the EMAIL_* settings.
        known = getattr(settings, "MAILERS", None) or {"default": {}}
        if self.alert_mailer not in known:
            found.append(f"ALERT_MAILER {self.alert_mailer!r} is not one of the site's MAILERS.")
        return found


comms_settings = CommsSettings.load


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
