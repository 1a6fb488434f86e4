"""The comms app's dashboard panel, its charts, and the banner it puts on every page when staff must look."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from console.comms.conf import comms_settings
from console.comms.declarations import FAILED_BY_CHANNEL, FAILED_BY_TYPE, OUTCOMES, SENT_BY_CHANNEL, SENT_BY_TYPE
from console.comms.failover import configured_routes
from console.comms.models import ACTIVE_STATUSES, Alert, Attempt, Breaker, Message, ProviderState
from console.comms.outcomes import SENT
from console.core.charts import RANGES, Chart, ChartRange, filtered
from console.events.rollups import Part, busiest_keys, over_time, range_totals

# Message classes or channels drawn per chart, busiest first.
KEYS_SHOWN = 6


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


# Messages waiting now are counted up to this many per status.
WAITING_COUNTED = 1_000
# The message lifecycle's outcomes the panel lists, in the order a message goes through them.
OUTCOMES_SHOWN = ("queued", "sent", "delivered", "deferred", "failed")


def dashboard_panel(request: HttpRequest) -> dict[str, Any]:
    """What happened to messages in the last 24 hours (from the rollups: no page view counts the messages
    table) and what waits now (indexed, counted up to ``WAITING_COUNTED`` per status)."""
    day = RANGES["24h"]
    summed = range_totals(OUTCOMES, day)
    waiting = []
    for status in ACTIVE_STATUSES:
        n = Message.objects.filter(status=status).order_by()[: WAITING_COUNTED + 1].count()
        if n:
            waiting.append((status.value, f"over {WAITING_COUNTED:,}" if n > WAITING_COUNTED else f"{n:,}"))
    return {
        "outcomes": [(outcome, summed[outcome].count) for outcome in OUTCOMES_SHOWN if outcome in summed],
        "since": day.starts()[0],
        "waiting": waiting,
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


def _outcomes_chart(chart_range: ChartRange) -> Chart:
    messages = reverse("comms:messages")
    parts = [
        Part("sent", "sent", "ok", filtered(messages, status="sent")),
        Part("deferred", "deferred", "warn", filtered(messages, status="deferred")),
        Part("failed", "failed", "bad", filtered(messages, status="failed")),
    ]
    starts, series = over_time(OUTCOMES, chart_range, parts)
    return Chart(
        slug="messages-outcomes",
        title="Messages sent, deferred and failed",
        description="Deliveries a channel accepted, retried later or gave up on.",
        unit="deliveries",
        starts=starts,
        bar=chart_range.bar,
        series=series,
    )


def _by_key_chart(chart_range: ChartRange, *, series_name: str, status: str, field: str, title: str) -> Chart:
    messages = reverse("comms:messages")
    keys = busiest_keys(series_name, chart_range, limit=KEYS_SHOWN)
    parts = [Part(key, key or "(none)", "", filtered(messages, status=status, **{field: key})) for key in keys]
    starts, series = over_time(series_name, chart_range, parts)
    return Chart(
        slug=series_name.replace(".", "-").replace("_", "-"),
        title=title,
        description=f"{title}, the {KEYS_SHOWN} busiest at most.",
        unit="deliveries",
        starts=starts,
        bar=chart_range.bar,
        series=series,
    )


def dashboard_charts(chart_range: ChartRange) -> list[Chart]:
    return [_outcomes_chart(chart_range)]


def page_charts(chart_range: ChartRange, of: int | None) -> list[Chart]:
    """Outcomes, then sent and failed by message class and by channel."""
    return [
        _outcomes_chart(chart_range),
        _by_key_chart(chart_range, series_name=SENT_BY_TYPE, status="sent", field="type", title="Sent by class"),
        _by_key_chart(chart_range, series_name=FAILED_BY_TYPE, status="failed", field="type", title="Failed by class"),
        _by_key_chart(
            chart_range, series_name=SENT_BY_CHANNEL, status="sent", field="channel", title="Sent by channel"
        ),
        _by_key_chart(
            chart_range, series_name=FAILED_BY_CHANNEL, status="failed", field="channel", title="Failed by channel"
        ),
    ]
