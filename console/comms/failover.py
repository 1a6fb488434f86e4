"""Several providers per channel: failover in order, a circuit breaker and a rate limit per provider.

A channel's providers are its first one (the message class's mailer alias for email, ``SMS_PROVIDER`` /
``PUSH_PROVIDER``) and then the failover list of ``CONSOLE_COMMS``. A failure that is the provider's
(``Outcome.provider_fault``: refused, dropped, timed out, 421/454, HTTP 5xx/429) tries the next provider; any
other answer (sent, or a failure that is about the recipient, such as 5.1.1) ends the delivery's turn there,
so a recipient's bad address is never shopped around to other providers.

The breaker and the rate-limit window of each provider are rows of ``ProviderState``, shared by every worker.
A worker reads them once per batch and writes only when something changes (a failure, a probe, a recovery),
so a healthy provider costs no write per message, and a provider whose circuit is open costs nothing at all.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from django.db.models import F
from django.utils import timezone

from console.comms import declarations
from console.comms.conf import comms_settings
from console.comms.models import Breaker, Delivery, ProviderState
from console.comms.outcomes import TEMPORARY, Outcome
from console.comms.providers import Outgoing, adapter
from console.comms.smtp import EmailSession, thread_sessions
from console.events import emit

log = structlog.get_logger("console.comms")


@dataclass(frozen=True)
class Route:
    """One provider of a channel: ``name`` is how settings, attempts and the dashboard call it."""

    name: str
    channel: str
    # The mailer alias (email) or the adapter's settings (SMS, push).
    alias: str = ""
    config: tuple[tuple[str, Any], ...] = ()


def adapter_routes(channel: str) -> list[Route]:
    conf = comms_settings()
    if channel == "sms":
        first, rest = conf.sms_provider, conf.sms_failover
    else:
        first, rest = conf.push_provider, conf.push_failover
    return [
        Route(name=f"{channel}:{entry.get('NAME') or position}", channel=channel, config=tuple(sorted(entry.items())))
        for position, entry in enumerate((first, *rest), start=1)
    ]


def routes(channel: str, mailer: str = "default") -> list[Route]:
    """The providers of ``channel`` in the order they are tried."""
    if channel != "email":
        return adapter_routes(channel)
    aliases = [mailer, *(a for a in comms_settings().mailer_failover.get(mailer, ()) if a != mailer)]
    return [Route(name=f"email:{alias}", channel="email", alias=alias) for alias in aliases]


def configured_routes() -> list[Route]:
    """Every provider the settings name (email: the mailers that have a failover list)."""
    found = [route for mailer in comms_settings().mailer_failover for route in routes("email", mailer)]
    found.extend(adapter_routes("sms") + adapter_routes("push"))
    return list({route.name: route for route in found}.values())


class Router:
    """Sends one task's deliveries through their providers, over the worker thread's kept connections."""

    def __init__(self) -> None:
        self.conf = comms_settings()
        self.sessions = thread_sessions()
        self.states: dict[str, ProviderState] = {}

    def prepare(self, deliveries: list[Delivery]) -> None:
        """Read the breakers of every provider these deliveries may use: one query for the batch."""
        names = sorted({r.name for d in deliveries for r in routes(d.channel, d.message.mailer)})
        self.states = ProviderState.objects.named(names) if names else {}

    def send(self, delivery: Delivery) -> tuple[Outcome, list[Outcome]]:
        """The delivery's outcome, and the provider failures that made it move on to the next provider."""
        failures: list[Outcome] = []
        for route in routes(delivery.channel, delivery.message.mailer):
            if not self.admits(route.name):
                continue
            self.throttle(route.name)
            outcome = replace(self.transmit(route, delivery), provider=route.name)
            if outcome.provider_fault:
                self.failed(route.name, outcome)
                failures.append(outcome)
                continue
            self.succeeded(route.name)
            return outcome, failures
        if failures:
            return failures[-1], failures[:-1]
        return self.all_open(delivery), []

    def close(self, *, failed: bool = False) -> None:
        """End the task: SMTP connections stay open for the thread's next task, unless the task failed."""
        for session in self.sessions.values():
            if failed:
                session.close()
            session.end_task()

    # --- sending -------------------------------------------------------------------------------------

    def transmit(self, route: Route, delivery: Delivery) -> Outcome:
        if route.channel == "email":
            session = self.sessions.get(route.alias)
            if session is None:
                session = self.sessions[route.alias] = EmailSession(route.alias)
            return session.send(delivery)
        msg = delivery.message
        outgoing = Outgoing(
            channel=delivery.channel,
            to=delivery.address,
            text=msg.sms_text if delivery.channel == "sms" else msg.push_body,
            title=msg.push_title if delivery.channel == "push" else "",
            message_id=msg.pk,
            delivery_id=delivery.pk,
        )
        try:
            return adapter(route.config).send(outgoing)
        except Exception as exc:  # an adapter bug must not leave the delivery claimed forever
            log.exception("comms.provider_error", provider=route.name)
            return Outcome(TEMPORARY, error=f"{type(exc).__name__}: {exc}"[:1000], provider_fault=True)

    def all_open(self, delivery: Delivery) -> Outcome:
        """Every provider of the channel is skipped: wait for the first probe, without blaming the recipient."""
        now = timezone.now()
        names = [r.name for r in routes(delivery.channel, delivery.message.mailer)]
        probes = [s.probe_at for n in names if (s := self.states.get(n)) is not None and s.probe_at is not None]
        wait = max(0.0, (min(probes) - now).total_seconds()) if probes else self.conf.breaker_reset_seconds
        return Outcome(
            TEMPORARY,
            error=f"every {delivery.channel} provider has its circuit open ({', '.join(names)})",
            retry_after=wait,
            provider=names[0],
            provider_fault=True,
        )

    # --- circuit breaker -----------------------------------------------------------------------------

    def admits(self, name: str, now: datetime | None = None) -> bool:
        """Closed: yes. Open: only for the one worker that takes the probe once the reset time has passed."""
        state = self.states.get(name)
        if state is None or state.breaker == Breaker.CLOSED:
            return True
        now = now or timezone.now()
        if state.probe_at is None or state.probe_at > now:
            return False
        next_probe = now + timedelta(seconds=self.conf.breaker_reset_seconds)
        won = ProviderState.objects.filter(pk=state.pk, breaker=Breaker.OPEN, probe_at=state.probe_at).update(
            probe_at=next_probe
        )
        state.probe_at = next_probe
        return bool(won)

    def failed(self, name: str, outcome: Outcome) -> None:
        state = self.states.get(name)
        if state is None:
            return
        error = outcome.error[:300]
        if state.breaker == Breaker.OPEN:
            # A failed probe: the circuit stays open until the next one (admits() already moved probe_at).
            ProviderState.objects.filter(pk=state.pk).update(last_error=error)
            return
        ProviderState.objects.filter(pk=state.pk).update(failures=F("failures") + 1, last_error=error)
        now = timezone.now()
        opened = ProviderState.objects.filter(
            pk=state.pk, breaker=Breaker.CLOSED, failures__gte=self.conf.breaker_failures
        ).update(
            breaker=Breaker.OPEN,
            opened_at=now,
            probe_at=now + timedelta(seconds=self.conf.breaker_reset_seconds),
        )
        state.refresh_from_db(fields=["breaker", "failures", "opened_at", "probe_at"])
        if opened:
            log.warning("comms.circuit_opened", provider=name, failures=state.failures)
            emit(declarations.PROVIDER_CIRCUIT_OPENED, provider=name, failures=state.failures, error=error)

    def succeeded(self, name: str) -> None:
        state = self.states.get(name)
        if state is None:
            return
        if state.breaker == Breaker.OPEN:
            closed = ProviderState.objects.filter(pk=state.pk, breaker=Breaker.OPEN).update(
                breaker=Breaker.CLOSED, failures=0, opened_at=None, probe_at=None
            )
            if closed:
                emit(declarations.PROVIDER_CIRCUIT_CLOSED, provider=name)
        elif state.failures:
            ProviderState.objects.filter(pk=state.pk, breaker=Breaker.CLOSED).update(failures=0)
        state.breaker, state.failures, state.opened_at, state.probe_at = Breaker.CLOSED, 0, None, None

    # --- rate limit ----------------------------------------------------------------------------------

    def throttle(self, name: str) -> None:
        """Wait for a slot in the provider's current window: all workers count in the same row."""
        rate = self.conf.provider_rates.get(name)
        state = self.states.get(name)
        if not rate or state is None:
            return
        deadline = time.monotonic() + 60  # a clock gone wrong must not hold the worker forever
        while time.monotonic() < deadline:
            window, allowed, wait = _window(rate)
            taken = ProviderState.objects.filter(pk=state.pk, window=window, window_count__lt=allowed).update(
                window_count=F("window_count") + 1
            )
            if taken or ProviderState.objects.filter(pk=state.pk, window__lt=window).update(
                window=window, window_count=1
            ):
                return
            time.sleep(wait)


def _window(rate: float) -> tuple[int, int, float]:
    """The current window's number, how many messages it allows, and the seconds until it ends.

    A window lasts one second, or one message's worth of time for rates under one a second.
    """
    length = max(1.0, 1.0 / rate)
    now = time.time()
    window = int(now // length)
    return window, max(1, int(rate * length)), (window + 1) * length - now
