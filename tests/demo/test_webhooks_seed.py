"""The demo's webhooks: endpoints with deliveries that succeeded and failed, health, one switched off by a 410."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

from console.events.models import WebhookDelivery, WebhookEndpoint, WebhookHealth


def test_it_seeds_endpoints_with_a_history_once(
    db: None, client: Client, operator: User, capsys: pytest.CaptureFixture[str]
) -> None:
    call_command("console_demo", "--events", "300", "--messages", "0")
    healthy = WebhookEndpoint.objects.get(name="Fulfilment (demo)")
    gone = WebhookEndpoint.objects.get(name="Legacy CRM (demo)")
    assert healthy.active and not gone.active and "410" in gone.disabled_reason
    statuses = set(WebhookDelivery.objects.filter(endpoint=healthy).values_list("status", flat=True))
    assert statuses == {"succeeded", "failed"}
    assert WebhookDelivery.objects.filter(endpoint=gone, last_status_code=410).count() == 1
    assert WebhookHealth.objects.filter(endpoint=healthy).count() == 48
    # Nothing waits to be sent: the hosts never resolve and the demo must not keep retrying them.
    assert not WebhookDelivery.objects.exclude(status__in=["succeeded", "failed"]).exists()
    client.force_login(operator)
    for endpoint in (healthy, gone):
        page = client.get(f"/webhooks/{endpoint.pk}/").content.decode()
        assert "hour by hour" in page and "succeeded" in page and "failed" in page
    assert "Enable again and deliver" in client.get(f"/webhooks/{gone.pk}/").content.decode()
    call_command("console_demo", "--events", "300", "--messages", "0")
    assert WebhookEndpoint.objects.count() == 2
    assert "exist already" in capsys.readouterr().out
