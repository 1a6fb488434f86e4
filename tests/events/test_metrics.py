"""/metrics: Prometheus text from declared events, summed across processes, for staff or a bearer token."""

from __future__ import annotations

import re
import subprocess
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from console.core.processes import child_env, manage_argv
from console.events.metrics import multiprocess_active
from console.events.pipeline import emit
from tests.events.conftest import PUBLISHED


def sample(text: str, name: str, labels: str = "") -> float:
    match = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def scrape(client: Client, **headers: str) -> str:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain")
    return response.content.decode()


@pytest.fixture
def token(settings: Any) -> str:
    settings.CONSOLE_EVENTS = {"METRICS_TOKEN": "s3cret-metrics"}
    return "s3cret-metrics"


def test_it_asks_for_credentials(client: Client, db: None) -> None:
    response = client.get("/metrics")
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")


def test_it_refuses_a_wrong_token_and_non_staff(client: Client, token: str, outsider: User) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 403
    client.force_login(outsider)
    assert client.get("/metrics").status_code == 403


def test_a_token_is_refused_when_none_is_configured(client: Client, db: None) -> None:
    assert client.get("/metrics", headers={"Authorization": "Bearer anything"}).status_code == 403


def test_staff_and_the_token_may_scrape(client: Client, token: str, staff: User) -> None:
    scrape(client, Authorization=f"Bearer {token}")
    client.force_login(staff)
    scrape(client)


def test_emitted_events_are_counted_with_bounded_labels(client: Client, token: str, db: None) -> None:
    auth = {"Authorization": f"Bearer {token}"}
    before = scrape(client, **auth)
    emit(PUBLISHED, n=1, colour="red")
    emit(PUBLISHED, n=2, colour="a-million-colours")
    after = scrape(client, **auth)
    label = '{type="test.published"}'
    assert sample(after, "console_events_total", label) - sample(before, "console_events_total", label) == 2
    for colour in ("red", "other"):
        name, labels = "console_test_published_total", f'{{colour="{colour}"}}'
        assert sample(after, name, labels) - sample(before, name, labels) == 1
    assert "a-million-colours" not in after


SCRIPT = """
from console.events.catalog import Metric, declare
from console.events.pipeline import emit
child = declare("test.child", description="Counted in a child.", persist=False,
                metrics=[Metric("console_test_child_total", "counter", "Child events.")])
for _ in range(3):
    emit(child)
"""


def test_counts_from_other_processes_are_included(client: Client, token: str) -> None:
    assert multiprocess_active()
    result = subprocess.run(
        manage_argv("shell", "-c", SCRIPT), env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    text = scrape(client, Authorization=f"Bearer {token}")
    assert sample(text, "console_test_child_total") == 3
    assert sample(text, "console_events_total", '{type="test.child"}') == 3
