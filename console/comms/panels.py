"""The comms app's dashboard panel and the banner it puts on every page when staff must look."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db.models import Count
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from console.comms.conf import comms_settings
from console.comms.models import Alert, Message


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
    }
