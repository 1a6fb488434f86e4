"""The comms app's settings: one ``CONSOLE_COMMS`` dict in the site's settings, read with defaults."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

DEFAULTS: dict[str, Any] = {
    # Where the "a mandatory message could not be delivered" alert goes; empty means settings.ADMINS.
    "ALERT_EMAILS": [],
    "ALERT_MAILER": "default",
    # Retries of temporary failures: exponential backoff with full jitter, capped, never past the expiry.
    "MAX_ATTEMPTS": 8,
    "BACKOFF_BASE_SECONDS": 30.0,
    "BACKOFF_CAP_SECONDS": 3600.0,
    # Temporary failures in a row after which a contact point is marked soft-failing.
    "SOFT_FAIL_AFTER": 3,
    # A queued delivery nobody picked up for this long is re-dispatched by the reconciler; a delivery left
    # "sending" longer than the lease belonged to a worker that died mid-send.
    "RECONCILE_AFTER_SECONDS": 30,
    "SENDING_LEASE_SECONDS": 300,
    "BATCH_SIZE": 100,
    "SMS_PROVIDER": {"CLASS": "console.comms.providers.LogProvider", "OPTIONS": {}},
    "PUSH_PROVIDER": {"CLASS": "console.comms.providers.LogProvider", "OPTIONS": {}},
    # Shared secret of the provider event endpoint (HMAC-SHA256 of the body); empty disables the endpoint.
    "INBOUND_SECRET": "",
    "BANNER_HOURS": 24,
}


@dataclass(frozen=True)
class CommsSettings:
    values: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def comms_settings() -> CommsSettings:
    return CommsSettings({**DEFAULTS, **getattr(settings, "CONSOLE_COMMS", {})})


def alert_recipients() -> list[str]:
    configured = list(comms_settings().ALERT_EMAILS)
    if configured:
        return configured
    return [address for _, address in getattr(settings, "ADMINS", [])]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    raw = getattr(settings, "CONSOLE_COMMS", {})
    if not isinstance(raw, dict):
        return [Error("CONSOLE_COMMS must be a dict.", id="console.comms.E001")]
    unknown = sorted(set(raw) - set(DEFAULTS))
    if unknown:
        errors.append(Error(f"CONSOLE_COMMS has unknown key(s): {', '.join(unknown)}.", id="console.comms.E002"))
    conf = comms_settings()
    for key in ("MAX_ATTEMPTS", "SOFT_FAIL_AFTER", "RECONCILE_AFTER_SECONDS", "SENDING_LEASE_SECONDS", "BATCH_SIZE"):
        value = conf.values[key]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            errors.append(Error(f"CONSOLE_COMMS[{key!r}] must be a positive integer.", id="console.comms.E003"))
    for key in ("SMS_PROVIDER", "PUSH_PROVIDER"):
        value = conf.values[key]
        if not isinstance(value, dict) or not isinstance(value.get("CLASS"), str):
            errors.append(
                Error(f"CONSOLE_COMMS[{key!r}] must be a dict with a CLASS dotted path.", id="console.comms.E004")
            )
    # Without MAILERS, Django 6.1 still builds the "default" mailer from the older EMAIL_* settings.
    known = getattr(settings, "MAILERS", None) or {"default": {}}
    if conf.ALERT_MAILER not in known:
        errors.append(
            Error(f"CONSOLE_COMMS['ALERT_MAILER'] {conf.ALERT_MAILER!r} is not in MAILERS.", id="console.comms.E005")
        )
    return errors
