"""CONSOLE_COMMS is validated by system checks that name the bad key."""

from __future__ import annotations

from typing import Any

from console.comms.conf import alert_recipients, check_settings


def ids(settings: Any, value: Any) -> list[str | None]:
    settings.CONSOLE_COMMS = value
    return [error.id for error in check_settings()]


def test_the_defaults_pass(settings: Any) -> None:
    assert ids(settings, {}) == []


def test_bad_settings_are_reported(settings: Any) -> None:
    assert ids(settings, []) == ["console.comms.E001"]
    assert ids(settings, {"MAX_ATEMPTS": 3}) == ["console.comms.E002"]
    assert ids(settings, {"MAX_ATTEMPTS": 0}) == ["console.comms.E003"]
    assert ids(settings, {"SMS_PROVIDER": "console.comms.providers.LogProvider"}) == ["console.comms.E003"]
    assert ids(settings, {"SMS_PROVIDER": {"OPTIONS": {}}}) == ["console.comms.E004"]
    assert ids(settings, {"ALERT_MAILER": "bulk"}) == ["console.comms.E004"]


def test_failover_settings_are_checked(settings: Any) -> None:
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.locmem.EmailBackend"}}
    assert ids(settings, {"MAILER_FAILOVER": {"default": ["backup"]}}) == ["console.comms.E004"]
    assert ids(settings, {"SMS_FAILOVER": [{"OPTIONS": {}}]}) == ["console.comms.E004"]
    assert ids(settings, {"PROVIDER_RATES": {"email:default": 0}}) == ["console.comms.E004"]
    assert ids(settings, {"PROVIDER_RATES": {"email:default": 2.5}, "BREAKER_FAILURES": 0}) == ["console.comms.E003"]
    good = {"SMS_FAILOVER": [{"CLASS": "console.comms.providers.LogProvider", "NAME": "backup"}]}
    assert ids(settings, good) == []


def test_alerts_go_to_admins_unless_configured(settings: Any) -> None:
    settings.ADMINS = ["ops@example.com"]
    settings.CONSOLE_COMMS = {}
    assert alert_recipients() == ["ops@example.com"]
    settings.ADMINS = [("Ops", "ops@example.com")]  # the form Django 6 deprecates, still accepted
    assert alert_recipients() == ["ops@example.com"]
    settings.CONSOLE_COMMS = {"ALERT_EMAILS": ["oncall@example.com"]}
    assert alert_recipients() == ["oncall@example.com"]
