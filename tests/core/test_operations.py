"""Background operations: started by a request that only records the intent, run by a worker in batches,
cancellable between batches, visible to those holding their kind's permission."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from pytest_django.fixtures import DjangoCaptureOnCommitCallbacks

from console.core.models import Operation
from console.core.operations import fail_lost_operations, run_operation
from console.core.registry import OperationKind, registry
from console.core.services import cancel_operation, start_operation

PERM = "auth.view_user"  # any real permission: the kind's own is the app's business


class Recorder:
    def __init__(self) -> None:
        self.batches: list[int] = []
        self.cancelled_by: list[str] = []
        self.cancel_after: int | None = None
        self.fail_at: int | None = None

    def run(self, operation: Operation) -> None:
        operation.set_total(5)
        for item in range(operation.progress.get("next", 0), 5):
            if item == self.fail_at:
                raise ValueError("row 3 is broken")
            if item == self.cancel_after:
                Operation.objects.filter(pk=operation.pk).update(cancel_requested_at=timezone.now())
            self.batches.append(item)
            operation.advance(1, next=item + 1)

    def on_cancel(self, operation: Operation, actor: Any) -> None:
        self.cancelled_by.append(actor.username)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()
    registry.add_operation(OperationKind("test.count", recorder.run, PERM, recorder.on_cancel))
    yield recorder
    del registry.operations["test.count"]


@pytest.fixture
def immediate(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}


def test_starting_records_the_intent_and_runs_it_once_committed(
    recorder: Recorder, immediate: None, staff: User, django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        operation = start_operation("test.count", label="Count to five", actor=staff, params={"to": 5})
        assert recorder.batches == []  # nothing runs inside the request's transaction
    operation.refresh_from_db()
    assert recorder.batches == [0, 1, 2, 3, 4]
    assert (operation.state, operation.done, operation.total, operation.percent) == ("succeeded", 5, 5, 100)
    assert operation.requested_by == staff and operation.finished_at is not None


def test_a_task_delivered_twice_runs_the_operation_once(recorder: Recorder, db: None) -> None:
    operation = start_operation("test.count", label="Count")
    assert run_operation(operation.pk) == "succeeded"
    assert run_operation(operation.pk) == "not queued"
    assert recorder.batches == [0, 1, 2, 3, 4]


def test_cancel_stops_a_running_operation_at_its_next_batch(recorder: Recorder, db: None) -> None:
    recorder.cancel_after = 2
    operation = start_operation("test.count", label="Count")
    assert run_operation(operation.pk) == "cancelled"
    operation.refresh_from_db()
    assert recorder.batches == [0, 1, 2] and operation.done == 2 and operation.state == "cancelled"


def test_cancelling_a_queued_operation_ends_it_before_it_starts(recorder: Recorder, staff: User) -> None:
    operation = start_operation("test.count", label="Count")
    assert cancel_operation(operation, staff) is True
    assert cancel_operation(operation, staff) is False  # asked already
    assert run_operation(operation.pk) == "not queued"
    operation.refresh_from_db()
    assert operation.state == "cancelled" and recorder.batches == [] and recorder.cancelled_by == [staff.username]


def test_a_failing_worker_body_fails_the_operation_with_its_error(recorder: Recorder, db: None) -> None:
    recorder.fail_at = 3
    operation = start_operation("test.count", label="Count")
    assert run_operation(operation.pk) == "failed"
    operation.refresh_from_db()
    assert operation.error == "ValueError: row 3 is broken" and operation.done == 3
    assert operation.progress == {"next": 3}  # where a resumed run would start


def test_an_operation_whose_worker_vanished_is_failed_by_the_tick(recorder: Recorder, db: None) -> None:
    stale = start_operation("test.count", label="Stale")
    fresh = start_operation("test.count", label="Fresh")
    Operation.objects.filter(pk=stale.pk).update(state="running", updated_at=timezone.now() - timedelta(minutes=11))
    Operation.objects.filter(pk=fresh.pk).update(state="running")
    assert fail_lost_operations() == "1 lost operations failed"
    stale.refresh_from_db()
    assert stale.state == "failed" and stale.error.startswith("Lost: no progress for 10 minutes")


def test_an_unknown_kind_cannot_be_started(db: None) -> None:
    with pytest.raises(LookupError):
        start_operation("test.nothing", label="Nothing")


def test_its_page_needs_the_kinds_permission(
    recorder: Recorder,
    client: Client,
    login: Callable[[User], Client],
    staff: User,
    staff_with: Callable[..., User],
    htmx_headers: dict[str, str],
) -> None:
    operation = start_operation("test.count", label="Count <b>to</b> five")
    url = reverse("core:operation", args=[operation.pk])
    assert client.get(url).status_code == 302  # anonymous: to the login page
    assert login(staff).get(url).status_code == 403
    allowed = login(staff_with(PERM))
    page = allowed.get(url)
    assert page.status_code == 200
    assert "Count &lt;b&gt;to&lt;/b&gt; five" in page.content.decode()
    assert 'hx-trigger="every 1s"' in page.content.decode()
    run_operation(operation.pk)
    piece = allowed.get(url, headers=htmx_headers)
    assert piece.status_code == 286  # finished: htmx stops polling
    assert 'data-state="succeeded"' in piece.content.decode() and "<h1>" not in piece.content.decode()


def test_cancel_from_the_page_needs_the_permission_and_names_the_actor(
    recorder: Recorder, login: Callable[[User], Client], staff: User, staff_with: Callable[..., User]
) -> None:
    operation = start_operation("test.count", label="Count")
    url = reverse("core:operation_cancel", args=[operation.pk])
    assert login(staff).post(url).status_code == 403
    holder = staff_with(PERM)
    response = login(holder).post(url)
    assert response.status_code == 302 and response["Location"] == reverse("core:operation", args=[operation.pk])
    operation.refresh_from_db()
    assert operation.state == "cancelled" and recorder.cancelled_by == [holder.username]


def test_an_operation_of_a_kind_no_app_offers_is_a_clear_404(login: Callable[[User], Client], admin_user: User) -> None:
    operation = Operation.objects.create(kind="gone.app", label="Old")
    response = login(admin_user).get(reverse("core:operation", args=[operation.pk]))
    assert response.status_code == 404
