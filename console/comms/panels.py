"""The comms app's dashboard panel and the banner it puts on every page when staff must look."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from console.comms.conf import comms_settings
from console.comms.failover import configured_routes
from console.comms.models import Alert, Attempt, Breaker, Message, ProviderState
from console.comms.outcomes import SENT


def alert_banner(request: HttpRequest) -> list[str]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated or not user.is_staff:
        return []
    since = timezone.now() - timedelta(hours=comms_settings().banner_hours)
    counts = dict(
        Alert.objects.filter(created_at__gte=since).values_list("kind").annotate(n=Count("id")).values_list("kind", "n")
    )
    banners = []
    if counts.get("mandatory_failed"):
        banners.append(
            f"{counts['mandatory_failed']} mandatory message(s) could not be delivered in the last "
            f"{comms_settings().banner_hours} h: see Messages, filter mandatory and failed."
        )
    if counts.get("policy"):
        banners.append(
            f"{counts['policy']} message(s) were refused by a provider for policy reasons (check sending setup)."
        )
    return banners


def dashboard_panel(request: HttpRequest) -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    recent = Message.objects.filter(created_at__gte=since)
    by_status = dict(recent.values_list("status").annotate(n=Count("id")).values_list("status", "n"))
    return {
        "by_status": sorted(by_status.items()),
        "failed_url": reverse("comms:messages") + "?status=failed",
        "providers": provider_health(),
    }


def provider_health() -> list[dict[str, Any]]:
    """Each provider's breaker and its error rate over the last hour of attempts (failovers included)."""
    now = timezone.now()
    states = {state.name: state for state in ProviderState.objects.all()}
    names = sorted({route.name for route in configured_routes()} | set(states))
    counts: dict[str, dict[str, int]] = {name: {"ok": 0, "failed": 0} for name in names}
    recent = Attempt.objects.filter(at__gte=now - timedelta(hours=1), provider__in=names)
    for provider, outcome, n in recent.values_list("provider", "outcome").annotate(n=Count("id")):
        counts[provider]["ok" if outcome == SENT else "failed"] += n
    rows = []
    for name in names:
        state = states.get(name)
        tried = counts[name]["ok"] + counts[name]["failed"]
        rows.append(
            {
                "name": name,
                "open": state is not None and state.breaker == Breaker.OPEN,
                "failures": state.failures if state else 0,
                "probe_at": state.probe_at if state else None,
                "last_error": state.last_error if state else "",
                "attempts": tried,
                "error_rate": round(100 * counts[name]["failed"] / tried) if tried else None,
            }
        )
    return rows
