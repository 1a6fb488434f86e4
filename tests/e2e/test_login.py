"""A person signs in through the real login form in Chromium and sees a dashboard fed by a real worker."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User

from tests.conftest import PASSWORD, Worker

pytestmark = pytest.mark.browser


def test_staff_signs_in_and_sees_backend_and_worker_heartbeat(page: Any, admin_user: User, worker: Worker) -> None:
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    assert "HueyBackend" in page.get_by_test_id("task-backend").inner_text()
    # The dashboard enqueued a heartbeat; the worker runs it and the polled status line shows it.
    status = page.get_by_test_id("worker-status")
    status.filter(has_text="running").wait_for(timeout=30_000)
    assert "last seen" in status.inner_text()


def test_wrong_password_shows_an_error_next_to_the_form(page: Any, admin_user: User) -> None:
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_text("Please enter a correct username and password").is_visible()


def test_a_non_staff_user_is_refused(page: Any, outsider: User) -> None:
    page.goto("/accounts/login/?next=/")
    page.get_by_label("Username").fill("outsider")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    response = page.goto("/")
    assert response.status == 403
