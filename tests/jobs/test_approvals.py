"""Runs that a second staff user must approve: waiting, approving, rejecting, and every way to get it wrong."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from console.events.models import Event
from console.jobs.access import APPROVE, CHANGE, DESTROY, EXPOSE, RUN
from console.jobs.models import JobRun, Status
from tests.conftest import squeezed

IMMEDIATE = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
APPROVER = (RUN, EXPOSE, CHANGE, DESTROY, APPROVE)


@pytest.fixture
def approvals(settings: Any) -> None:
    """Destructive runs need approval; jobs run inside the request, so a run that was let go has finished."""
    settings.CONSOLE_JOBS = {"APPROVALS": ["destructive"], "CLASSES": {"demo_report": "destructive"}}
    settings.TASKS = IMMEDIATE


def request_run(client: Client, user: User, **extra: str) -> JobRun:
    client.force_login(user)
    data = {"name": "Q1", "subcommand": "build", "job-confirm": "demo_report", "job-reason": "quarterly", **extra}
    response = client.post("/jobs/demo_report/", data)
    run = JobRun.objects.latest("id")
    assert response.status_code == 302 and response["Location"] == f"/jobs/runs/{run.pk}/"
    return run


@pytest.mark.django_db(transaction=True)
def test_a_run_that_needs_approval_waits_and_does_not_start(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator, api_token="hunter2")
    assert run.status == Status.AWAITING and run.needs_approval and run.started_at is None
    queued = Event.objects.get(type="job.queued")
    assert queued.data["awaiting_approval"] is True and queued.actor == operator
    page = squeezed(client.get(f"/jobs/runs/{run.pk}/").content.decode())
    assert 'data-testid="run-status">awaiting approval</span>' in page
    assert "Waits for a second staff user" in page
    # The requester may withdraw the request, not approve it.
    assert "Withdraw request" in page and "Approve and run" not in page
    # Polling slows down while nobody has decided.
    assert 'hx-trigger="every 5s"' in page
    client.force_login(staff_with(*APPROVER))
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert "Approve and run" in page and f'formaction="/jobs/runs/{run.pk}/reject"' in page
    run.refresh_from_db()
    assert run.status == Status.AWAITING


@pytest.mark.django_db(transaction=True)
def test_a_second_user_approves_and_the_run_starts_with_its_secrets(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator, api_token="hunter2")
    approver = staff_with(*APPROVER)
    client.force_login(approver)
    response = client.post(f"/jobs/runs/{run.pk}/approve", {"decision-reason": "looks right"}, follow=True)
    run.refresh_from_db()
    assert run.status == Status.SUCCEEDED and run.decided_by == approver and run.decision_reason == "looks right"
    assert run.real_argv() == ["--api-token=hunter2", "Q1", "build"]
    assert "hunter2" not in run.argv_display
    page = response.content.decode()
    assert f"Run #{run.pk} approved." in page and f"Approved by {approver}" in squeezed(page)
    approved = Event.objects.get(type="job.approved")
    assert approved.actor == approver and approved.data == {
        "run_id": run.pk,
        "command": "demo_report",
        "requested_by": operator.pk,
        "reason": "looks right",
    }
    assert approved.stream_id == f"job-{run.pk}"


def test_a_second_user_rejects_and_the_run_never_starts(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator)
    rejecter = staff_with(*APPROVER)
    client.force_login(rejecter)
    client.post(f"/jobs/runs/{run.pk}/reject", {"decision-reason": "wrong quarter"})
    run.refresh_from_db()
    assert run.status == Status.REJECTED and run.started_at is None and run.finished_at is not None
    assert run.note == f"Rejected by {rejecter}: wrong quarter"
    rejected = Event.objects.get(type="job.rejected")
    assert rejected.actor == rejecter and rejected.data["reason"] == "wrong quarter"


def test_approving_ones_own_request_is_refused_and_audited(client: Client, operator: User, approvals: None) -> None:
    run = request_run(client, operator)
    for action in ("approve", "reject"):
        response = client.post(f"/jobs/runs/{run.pk}/{action}")
        assert response.status_code == 403
        assert "you requested it, and another staff user must approve or reject it" in response.content.decode()
    run.refresh_from_db()
    assert run.status == Status.AWAITING and run.decided_by is None
    denied = Event.objects.filter(type="job.denied")
    assert denied.count() == 2 and {e.data["run_id"] for e in denied} == {run.pk}


def test_approving_twice_or_after_a_rejection_says_who_decided(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    approved = request_run(client, operator)
    rejected = request_run(client, operator)
    first, second = staff_with(*APPROVER), staff_with(*APPROVER)
    client.force_login(first)
    client.post(f"/jobs/runs/{approved.pk}/approve")
    client.post(f"/jobs/runs/{rejected.pk}/reject")
    client.force_login(second)
    again = client.post(f"/jobs/runs/{approved.pk}/approve", follow=True).content.decode()
    assert f"Run #{approved.pk} was already approved by {first} at " in again
    late = client.post(f"/jobs/runs/{rejected.pk}/approve", follow=True).content.decode()
    assert f"Run #{rejected.pk} was already rejected by {first} at " in late
    assert "can no longer be approved or rejected" in late
    assert Event.objects.filter(type="job.approved").count() == 1
    assert Event.objects.filter(type="job.rejected").count() == 1
    rejected.refresh_from_db()
    assert rejected.status == Status.REJECTED


def test_a_withdrawn_request_cannot_be_approved(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator)
    client.post(f"/jobs/runs/{run.pk}/stop")
    run.refresh_from_db()
    assert run.status == Status.CANCELLED
    client.force_login(staff_with(*APPROVER))
    page = client.post(f"/jobs/runs/{run.pk}/approve", follow=True).content.decode()
    assert f"Run #{run.pk} was withdrawn (cancelled) before anyone approved it." in page


def test_a_run_that_never_needed_approval_cannot_be_approved(client: Client, operator: User, staff_with: Any) -> None:
    client.force_login(operator)
    client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"})
    run = JobRun.objects.get()
    assert run.status == Status.QUEUED and not run.needs_approval
    client.force_login(staff_with(*APPROVER))
    page = client.post(f"/jobs/runs/{run.pk}/approve", follow=True).content.decode()
    assert f"Run #{run.pk} did not need approval." in page


@pytest.mark.parametrize(
    ("perms", "missing"),
    [
        ((RUN, EXPOSE, CHANGE, DESTROY), "lacks the jobs.approve_run permission"),
        ((RUN, APPROVE), "lacks the jobs.run_exposing_command and jobs.run_changing_command and "),
    ],
)
def test_approving_needs_the_approve_permission_and_the_right_to_run_the_class(
    client: Client, operator: User, approvals: None, staff_with: Any, perms: tuple[str, ...], missing: str
) -> None:
    run = request_run(client, operator)
    client.force_login(staff_with(*perms))
    assert "Approve and run" not in client.get(f"/jobs/runs/{run.pk}/").content.decode()
    response = client.post(f"/jobs/runs/{run.pk}/approve")
    assert response.status_code == 403 and missing in response.content.decode()
    run.refresh_from_db()
    assert run.status == Status.AWAITING


def test_a_decision_reason_with_a_nul_is_an_error_next_to_the_field(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator)
    client.force_login(staff_with(*APPROVER))
    response = client.post(f"/jobs/runs/{run.pk}/approve", {"decision-reason": "a\x00b"})
    assert response.status_code == 200
    assert 'id="id_decision-reason-error">Null characters are not allowed.' in response.content.decode()
    run.refresh_from_db()
    assert run.status == Status.AWAITING


def test_approvals_go_by_command_name_or_class(client: Client, operator: User, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"APPROVALS": ["demo_report"]}
    client.force_login(operator)
    client.post("/jobs/demo_report/", {"name": "Q1", "subcommand": "build"})
    client.post("/jobs/check/", {})
    assert dict(JobRun.objects.values_list("command", "status")) == {
        "demo_report": Status.AWAITING,
        "check": Status.QUEUED,
    }


def test_the_dashboard_and_history_show_what_awaits_approval(
    client: Client, operator: User, approvals: None, staff: User
) -> None:
    run = request_run(client, operator)
    page = squeezed(client.get("/").content.decode())
    assert '<a href="/jobs/runs/?status=awaiting">1</a>' in page
    assert f'<a href="/jobs/runs/{run.pk}/">#{run.pk} <code>demo_report</code></a> requested by operator' in page
    history = client.get("/jobs/runs/?status=awaiting").content.decode()
    assert '<span class="badge awaiting">awaiting approval</span>' in history
    # Staff who may not read destructive runs see the count, not which runs wait.
    client.force_login(staff)
    page = squeezed(client.get("/").content.decode())
    assert '<a href="/jobs/runs/?status=awaiting">1</a>' in page and f"/jobs/runs/{run.pk}/" not in page


def test_a_poll_shows_the_approval_when_it_comes(
    client: Client, operator: User, approvals: None, staff_with: Any
) -> None:
    run = request_run(client, operator)
    poll = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=awaiting", headers={"HX-Request": "true"})
    assert 'id="run-summary"' not in poll.content.decode() and "every 5s" in poll.content.decode()
    client.force_login(staff_with(*APPROVER))
    client.post(f"/jobs/runs/{run.pk}/approve")
    client.force_login(operator)
    poll = client.get(f"/jobs/runs/{run.pk}/output?after=0&seen=awaiting", headers={"HX-Request": "true"})
    assert 'id="run-summary"' in poll.content.decode() and "Approved by" in squeezed(poll.content.decode())
