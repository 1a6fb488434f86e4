"""Bulk stop and re-run on /jobs/runs/: the count before confirming, one audited action, the work in the queue."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User
from django.test import Client

from console.core.models import Operation
from console.core.operations import run_operation
from console.core.services import cancel_operation
from console.events.models import Event
from console.jobs.access import RUN
from console.jobs.models import JobRun, Status


def make(user: User, status: str, command: str = "demo_report", **extra: Any) -> JobRun:
    return JobRun.objects.create(
        command=command, argv=["Q1", "build"], argv_display="Q1 build", requested_by=user, status=status, **extra
    )


def confirm(client: Client, data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Post a bulk action unconfirmed: the confirmation page and the fields its form posts back."""
    response = client.post("/jobs/runs/bulk", data)
    assert response.status_code == 200
    page = response.content.decode()
    fields = dict(re.findall(r'<input type="hidden" name="(do|filter|up_to|confirm)" value="([^"]*)"', page))
    fields["run"] = re.findall(r'<input type="hidden" name="run" value="(\d+)"', page)
    return page, fields


def test_bulk_stop_of_the_runs_matching_the_filter(client: Client, operator: User) -> None:
    running = [make(operator, Status.RUNNING) for _ in range(3)]
    queued = [make(operator, Status.QUEUED) for _ in range(2)]
    finished = make(operator, Status.SUCCEEDED)
    other = make(operator, Status.RUNNING, command="demo_import")
    client.force_login(operator)
    page = client.get("/jobs/runs/?command=demo_report").content.decode()
    assert 'name="filter" value="command=demo_report"' in page and 'form="bulk-form"' in page

    page, fields = confirm(client, {"do": "stop-matching", "filter": "command=demo_report"})
    assert "Stop 5 runs?" in page and not Operation.objects.exists()
    response = client.post("/jobs/runs/bulk", fields)
    operation = Operation.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/operations/{operation.pk}/"
    assert (operation.kind, operation.total, operation.label) == ("jobs.bulk", 5, "Stop 5 runs")
    requested = Event.objects.get(type="job.bulk_requested")
    assert requested.actor == operator and requested.data["count"] == 5 and requested.data["action"] == "stop"
    # Nothing was stopped in the request: the worker does it.
    assert JobRun.objects.filter(status=Status.RUNNING).count() == 4

    assert run_operation(operation.pk) == "succeeded"
    operation.refresh_from_db()
    assert (operation.done, operation.progress["skipped"]) == (5, 0)
    assert {r.status for r in JobRun.objects.filter(pk__in=[r.pk for r in running])} == {Status.CANCELLING}
    assert {r.status for r in JobRun.objects.filter(pk__in=[r.pk for r in queued])} == {Status.CANCELLED}
    assert JobRun.objects.get(pk=finished.pk).status == Status.SUCCEEDED
    assert JobRun.objects.get(pk=other.pk).status == Status.RUNNING
    assert Event.objects.filter(type="job.stop_requested", actor=operator).count() == 5


def test_bulk_stop_of_selected_runs_takes_only_those(client: Client, operator: User) -> None:
    first, second, third = (make(operator, Status.RUNNING) for _ in range(3))
    client.force_login(operator)
    page, fields = confirm(client, {"do": "stop-selected", "run": [first.pk, third.pk, "x", "-1"]})
    assert "Stop 2 runs?" in page and sorted(map(int, fields["run"])) == [first.pk, third.pk]
    client.post("/jobs/runs/bulk", fields)
    run_operation(Operation.objects.get().pk)
    assert JobRun.objects.get(pk=second.pk).status == Status.RUNNING
    assert JobRun.objects.filter(status=Status.CANCELLING).count() == 2


def test_a_bulk_action_over_zero_runs_says_so(client: Client, operator: User) -> None:
    make(operator, Status.SUCCEEDED)
    client.force_login(operator)
    response = client.post("/jobs/runs/bulk", {"do": "stop-matching", "filter": "command=demo_report"}, follow=True)
    assert (
        "Zero runs to stop: no run matching these filters is awaiting approval, queued or running."
        in response.content.decode()
    )
    response = client.post("/jobs/runs/bulk", {"do": "rerun-selected"}, follow=True)
    assert "Zero runs to re-run: no runs were selected." in response.content.decode()
    assert not Operation.objects.exists()


def test_rerun_all_matching_takes_only_runs_counted_when_confirmed(client: Client, operator: User) -> None:
    failed = [make(operator, Status.FAILED) for _ in range(2)]
    client.force_login(operator)
    page, fields = confirm(client, {"do": "rerun-matching", "filter": "status=failed"})
    assert "Re-run 2 runs?" in page
    late = make(operator, Status.FAILED)  # failed after the count was shown: not taken
    client.post("/jobs/runs/bulk", fields)
    operation = Operation.objects.get()
    assert operation.total == 2
    run_operation(operation.pk)
    reruns = JobRun.objects.filter(rerun_of__isnull=False)
    assert list(reruns.order_by("rerun_of_id").values_list("rerun_of_id", flat=True)) == [r.pk for r in failed]
    assert not reruns.filter(rerun_of=late).exists()
    assert {r.status for r in reruns} == {Status.QUEUED}


def test_bulk_needs_the_run_permission_and_a_known_action(client: Client, staff: User, operator: User) -> None:
    client.force_login(operator)
    assert client.post("/jobs/runs/bulk", {"do": "delete-matching"}).status_code == 400
    client.force_login(staff)
    response = client.post("/jobs/runs/bulk", {"do": "stop-matching"})
    assert response.status_code == 403 and RUN in response.content.decode()


def test_runs_the_user_may_not_act_on_are_skipped(client: Client, operator: User, staff_with: Any) -> None:
    mine = make(operator, Status.RUNNING, job_class="read-only")
    theirs = make(operator, Status.RUNNING, job_class="destructive")
    user = staff_with(RUN, "jobs.view_all_runs")
    client.force_login(user)
    _, fields = confirm(client, {"do": "stop-matching", "filter": ""})
    client.post("/jobs/runs/bulk", fields)
    operation = Operation.objects.get()
    run_operation(operation.pk)
    operation.refresh_from_db()
    assert (operation.done, operation.progress["skipped"]) == (2, 1)
    assert JobRun.objects.get(pk=mine.pk).status == Status.CANCELLING
    assert JobRun.objects.get(pk=theirs.pk).status == Status.RUNNING


def test_cancelling_a_bulk_action_is_audited(client: Client, operator: User) -> None:
    make(operator, Status.RUNNING)
    client.force_login(operator)
    _, fields = confirm(client, {"do": "stop-matching", "filter": ""})
    client.post("/jobs/runs/bulk", fields)
    operation = Operation.objects.get()
    assert cancel_operation(operation, operator)
    cancelled = Event.objects.get(type="job.bulk_cancelled")
    assert cancelled.actor == operator and cancelled.data["operation_id"] == operation.pk


def test_bulk_stop_withdraws_runs_awaiting_approval(client: Client, operator: User) -> None:
    awaiting = make(operator, Status.AWAITING, needs_approval=True)
    rejected = make(operator, Status.REJECTED, needs_approval=True)
    client.force_login(operator)
    page, fields = confirm(client, {"do": "stop-matching", "filter": ""})
    assert "Stop 1 run?" in page
    client.post("/jobs/runs/bulk", fields)
    run_operation(Operation.objects.get().pk)
    assert JobRun.objects.get(pk=awaiting.pk).status == Status.CANCELLED
    assert JobRun.objects.get(pk=rejected.pk).status == Status.REJECTED


def test_a_bulk_rerun_of_a_rejected_run_waits_for_approval_again(client: Client, operator: User, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"APPROVALS": ["demo_report"]}
    rejected = make(operator, Status.REJECTED, needs_approval=True)
    client.force_login(operator)
    page, fields = confirm(client, {"do": "rerun-matching", "filter": "status=rejected"})
    assert "Re-run 1 run?" in page
    client.post("/jobs/runs/bulk", fields)
    run_operation(Operation.objects.get().pk)
    rerun = JobRun.objects.get(rerun_of=rejected)
    assert (rerun.status, rerun.needs_approval) == (Status.AWAITING, True)
