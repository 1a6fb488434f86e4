"""Providers: Django's mailers for email, and SMS and push adapters (one that logs, one for an HTTP provider).

Adapters pass our message and delivery ids in the provider's metadata, so the provider's delivery reports
sent back to the inbound endpoint name the delivery they are about.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import django.core.mail
import httpx
import structlog
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.utils.module_loading import import_string

from console.comms.outcomes import SENT, TEMPORARY, Outcome, classify_http

log = structlog.get_logger("console.comms.providers")


def mailer(alias: str) -> BaseEmailBackend:
    """The email backend a message class's ``mailer`` alias names (Django's ``MAILERS``)."""
    # Django 6.1 has mailers; Django 6.0 one connection, built from the EMAIL_* settings.
    mailers = getattr(django.core.mail, "mailers", None)
    if mailers is not None:
        backend: BaseEmailBackend = mailers[alias]
        return backend
    if alias != "default":
        raise ImproperlyConfigured(f"Mailer {alias!r} needs Django 6.1's MAILERS; Django 6.0 has only 'default'.")
    return get_connection()


@dataclass(frozen=True)
class Outgoing:
    channel: str
    to: str
    text: str
    title: str
    message_id: int
    delivery_id: int


class Provider(Protocol):
    def send(self, outgoing: Outgoing) -> Outcome: ...


class LogProvider:
    """Development adapter: writes the message to the log and reports it sent."""

    def __init__(self, **options: Any) -> None:
        self.options = options

    def send(self, outgoing: Outgoing) -> Outcome:
        log.info(
            "comms.provider.logged",
            channel=outgoing.channel,
            to=outgoing.to,
            title=outgoing.title,
            text=outgoing.text,
            message_id=outgoing.message_id,
        )
        return Outcome(SENT, provider_id=f"log-{outgoing.channel}-{outgoing.delivery_id}")


class HttpProvider:
    """POSTs JSON to a provider; 2xx with an ``id`` is sent, 429/5xx (with Retry-After) temporary, etc."""

    def __init__(self, *, url: str, token: str = "", timeout: float = 10.0) -> None:
        self.url = url
        self.token = token
        self.timeout = timeout

    def send(self, outgoing: Outgoing) -> Outcome:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        payload = {
            "channel": outgoing.channel,
            "to": outgoing.to,
            "title": outgoing.title,
            "text": outgoing.text,
            "metadata": {"console_message_id": outgoing.message_id, "console_delivery_id": outgoing.delivery_id},
        }
        try:
            response = httpx.post(self.url, json=payload, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            return Outcome(TEMPORARY, error=f"{type(exc).__name__}: {exc}", provider_fault=True)
        if 200 <= response.status_code < 300:
            try:
                provider_id = str(response.json().get("id", ""))
            except ValueError:
                provider_id = ""
            return Outcome(SENT, code=response.status_code, provider_id=provider_id)
        return classify_http(response.status_code, response.text, response.headers.get("Retry-After"))


@functools.cache
def _provider(path: str, options: tuple[tuple[str, Any], ...]) -> Provider:
    cls = import_string(path)
    provider: Provider = cls(**dict(options))
    return provider


def adapter(config: tuple[tuple[str, Any], ...]) -> Provider:
    """The adapter an SMS or push provider's settings ({"CLASS", "OPTIONS"}, as sorted items) name."""
    conf = dict(config)
    return _provider(conf["CLASS"], tuple(sorted(conf.get("OPTIONS", {}).items())))
