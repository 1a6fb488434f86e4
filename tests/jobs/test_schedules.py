"""Schedules: cron and interval times across DST, the tick creating due runs exactly once, overlap and missed
policies, settings-defined schedules, and the schedule pages."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections
from django.test import Client
from django.utils import timezone

from console.events.models import Event
from console.jobs.access import RUN, SCHEDULE
from console.jobs.catalog import lookup
from console.jobs.introspect import Token
from console.jobs.models import JobRun, Missed, Overlap, Schedule, Source, Status
from console.jobs.scheduler import create_due_runs, sync_settings_schedules
from console.jobs.services import When, schedule_save
from console.jobs.when import check_cron, next_cron, next_interval

postgres_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="racing ticks in parallel transactions need PostgreSQL"
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def make_schedule(user: User | None, name: str = "nightly", *, when: When | None = None, **fields: Any) -> Schedule:
    schedule = schedule_save(
        actor=user,
        name=name,
        info=lookup("demo_report"),
        tokens=[Token("Q1"), Token("build")],
        when=when or When(cron="30 2 * * *", time_zone="Europe/Paris"),
    )
    if fields:
        Schedule.objects.filter(pk=schedule.pk).update(**fields)
        schedule.refresh_from_db()
    return schedule


# --- times -------------------------------------------------------------------------------------------------


def test_a_daily_time_skipped_by_the_spring_change_runs_at_the_first_minute_after_it() -> None:
    # Paris skips 02:00-03:00 on 29 March 2026: 02:30 does not exist that night.
    assert next_cron("30 2 * * *", "Europe/Paris", utc(2026, 3, 28, 12)) == utc(2026, 3, 29, 1, 0)
    assert next_cron("30 2 * * *", "Europe/Paris", utc(2026, 3, 29, 1, 0)) == utc(2026, 3, 30, 0, 30)


def test_a_daily_time_repeated_by_the_autumn_change_runs_once() -> None:
    # Paris lives 02:00-03:00 twice on 25 October 2026; the job runs at the first 02:30 (CEST) only.
    first = next_cron("30 2 * * *", "Europe/Paris", utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert next_cron("30 2 * * *", "Europe/Paris", first) == utc(2026, 10, 26, 1, 30)


def test_an_hourly_expression_runs_in_both_hours_of_the_autumn_change() -> None:
    moment, seen = utc(2026, 10, 24, 22, 30), []
    for _ in range(4):
        found = next_cron("0 * * * *", "Europe/Paris", moment)
        assert found is not None
        seen.append(found)
        moment = found
    assert seen == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0), utc(2026, 10, 25, 1), utc(2026, 10, 25, 2)]


def test_intervals_count_from_their_anchor() -> None:
    anchor = utc(2026, 1, 1)
    assert next_interval(anchor, 600, utc(2026, 1, 1, 0, 25)) == utc(2026, 1, 1, 0, 30)
    assert next_interval(anchor, 600, utc(2026, 1, 1, 0, 30)) == utc(2026, 1, 1, 0, 40)


@pytest.mark.parametrize("expression", ["61 * * * *", "* * *", "0 0 30 2 *", "nonsense", "* * * * * * * *"])
def test_bad_cron_expressions_are_refused_with_a_reason(expression: str) -> None:
    with pytest.raises(ValueError, match=r"cron expression|never matches"):
        check_cron(expression)


# --- the tick ------------------------------------------------------------------------------------------------


def test_the_tick_creates_a_due_run_once_and_moves_the_next_time_on(operator: User) -> None:
    schedule = make_schedule(operator)
    due = schedule.next_run_at
    assert due is not None
    tally = create_due_runs(due + timedelta(seconds=5))
    assert (tally.created, tally.skipped) == (1, 0)
    run = JobRun.objects.get(schedule=schedule)
    assert (run.due_at, run.status, run.requested_by, run.argv) == (due, Status.QUEUED, operator, ["Q1", "build"])
    schedule.refresh_from_db()
    assert schedule.next_run_at == due + timedelta(days=1)
    assert schedule.last_due_at == due
    queued = Event.objects.get(type="job.queued", data__run_id=run.pk)
    assert queued.data["schedule"] == "nightly" and queued.actor_id is None
    # The same moment again (a second tick that read the schedule late) creates nothing.
    assert create_due_runs(due + timedelta(seconds=5)).created == 0
    assert JobRun.objects.filter(schedule=schedule).count() == 1


def test_a_tick_with_a_stale_view_of_the_schedule_is_stopped_by_the_unique_key(operator: User) -> None:
    schedule = make_schedule(operator, overlap=Overlap.QUEUE)
    due = schedule.next_run_at
    assert due is not None
    create_due_runs(due)
    # Put the schedule back as a tick that read it before the first one committed would see it.
    Schedule.objects.filter(pk=schedule.pk).update(next_run_at=due)
    tally = create_due_runs(due)
    assert (tally.created, tally.taken) == (0, 1)
    assert JobRun.objects.filter(schedule=schedule, due_at=due).count() == 1


def test_overlap_skip_creates_no_run_while_the_last_one_is_going(operator: User) -> None:
    schedule = make_schedule(operator)
    due = schedule.next_run_at
    assert due is not None
    JobRun.objects.create(command="demo_report", schedule=schedule, status=Status.RUNNING)
    tally = create_due_runs(due)
    assert (tally.created, tally.skipped) == (0, 1)
    schedule.refresh_from_db()
    assert schedule.last_skipped_at == due and "still awaiting approval, queued or running" in schedule.skip_note
    assert schedule.next_run_at == due + timedelta(days=1)
    assert Event.objects.filter(type="schedule.skipped", data__name="nightly").count() == 1


def test_a_scheduled_run_of_a_command_that_needs_approval_waits_for_it(
    operator: User, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.CONSOLE_JOBS = {"APPROVALS": ["demo_report"]}
    schedule = make_schedule(operator)
    due = schedule.next_run_at
    assert due is not None
    with django_capture_on_commit_callbacks() as callbacks:
        assert create_due_runs(due).created == 1
    run = JobRun.objects.get(schedule=schedule)
    assert (run.status, run.needs_approval) == (Status.AWAITING, True)
    assert Event.objects.get(type="job.queued", data__run_id=run.pk).data["awaiting_approval"] is True
    # Nothing goes to the queue: approving the run enqueues it.
    assert callbacks == []
    # While it waits it is the schedule's last run still going: an overlap "skip" schedule skips the next time.
    next_due = schedule.next_after(due)
    assert next_due is not None
    tally = create_due_runs(next_due)
    assert (tally.created, tally.skipped) == (0, 1)
    schedule.refresh_from_db()
    assert "still awaiting approval, queued or running" in schedule.skip_note


def test_a_rejected_run_does_not_hold_back_the_schedule(operator: User) -> None:
    schedule = make_schedule(operator)
    due = schedule.next_run_at
    assert due is not None
    JobRun.objects.create(command="demo_report", schedule=schedule, status=Status.REJECTED, needs_approval=True)
    assert create_due_runs(due).created == 1


def test_overlap_queue_creates_a_run_while_the_last_one_is_going(operator: User) -> None:
    schedule = make_schedule(operator, overlap=Overlap.QUEUE)
    due = schedule.next_run_at
    assert due is not None
    JobRun.objects.create(command="demo_report", schedule=schedule, status=Status.RUNNING)
    assert create_due_runs(due).created == 1
    assert JobRun.objects.filter(schedule=schedule, status=Status.QUEUED, due_at=due).exists()


def test_missed_times_run_once_for_the_newest_when_the_policy_says_run_once(operator: User) -> None:
    schedule = make_schedule(operator, when=When(interval_seconds=600))
    due = schedule.next_run_at
    assert due is not None
    # Nothing ran for an hour: six times were missed.
    now = due + timedelta(minutes=55)
    tally = create_due_runs(now)
    assert tally.created == 1
    run = JobRun.objects.get(schedule=schedule)
    assert run.due_at == due + timedelta(minutes=50)
    schedule.refresh_from_db()
    assert schedule.next_run_at == due + timedelta(minutes=60)


def test_missed_times_are_skipped_when_the_policy_says_skip(operator: User) -> None:
    schedule = make_schedule(operator, when=When(interval_seconds=600, missed=Missed.SKIP))
    due = schedule.next_run_at
    assert due is not None
    tally = create_due_runs(due + timedelta(minutes=55))
    assert (tally.created, tally.skipped) == (0, 1)
    schedule.refresh_from_db()
    assert schedule.skip_note.startswith("missed") and schedule.next_run_at == due + timedelta(minutes=60)
    # A time seen within MISSED_AFTER_SECONDS is not missed: it runs.
    assert create_due_runs(due + timedelta(minutes=60, seconds=30)).created == 1


def test_a_paused_schedule_creates_no_runs_and_resuming_skips_what_passed(operator: User) -> None:
    schedule = make_schedule(operator, when=When(interval_seconds=60))
    Schedule.objects.filter(pk=schedule.pk).update(enabled=False, next_run_at=None)
    assert create_due_runs(timezone.now() + timedelta(hours=1)).created == 0


@postgres_only
def test_two_racing_tick_loops_create_exactly_one_run_per_due_schedule(transactional_db: None) -> None:
    """1,000 schedules due in the same minute, two ticks at once in their own connections: 1,000 runs."""
    now = timezone.now()
    template = make_schedule(None, "template", when=When(interval_seconds=60))
    fields = {f.attname: getattr(template, f.attname) for f in Schedule._meta.concrete_fields if not f.primary_key}
    Schedule.objects.bulk_create(
        [Schedule(**{**fields, "name": f"s-{i}", "next_run_at": now - timedelta(seconds=10)}) for i in range(1000)]
    )
    Schedule.objects.filter(name="template").delete()
    start = threading.Barrier(2)
    tallies: list[Any] = []
    seconds: list[float] = []
    errors: list[BaseException] = []

    def tick() -> None:
        try:
            start.wait()
            began = time.thread_time()
            tallies.append(create_due_runs(now))
            seconds.append(time.thread_time() - began)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=tick) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert JobRun.objects.filter(schedule__isnull=False).count() == 1000
    assert sum(t.created for t in tallies) == 1000
    assert Event.objects.filter(type="job.queued").count() == 1000
    assert not Schedule.objects.filter(next_run_at__lte=now).exists()
    # Each tick's own work (CPU time: a shared test machine's wall clock says more about its neighbours)
    # stays under a second; bench/bench_schedules.py reports the wall time against a floor.
    assert max(seconds) < 1.0, seconds


# --- settings -----------------------------------------------------------------------------------------------


def test_schedules_in_settings_are_synced_read_only_and_removed_with_their_entry(
    db: None, settings: Any, client: Client, operator: User
) -> None:
    settings.CONSOLE_JOBS = {
        "SCHEDULES": {
            "reports": {"command": "demo_report", "args": ["Q2", "build"], "interval": 3600, "missed": "skip"}
        }
    }
    assert "1 settings schedules saved" in sync_settings_schedules()
    schedule = Schedule.objects.get(name="reports")
    assert (schedule.source, schedule.argv, schedule.interval_seconds) == (Source.SETTINGS, ["Q2", "build"], 3600)
    assert schedule.next_run_at is not None
    client.force_login(operator)
    page = client.get(f"/jobs/schedules/{schedule.pk}/").content.decode()
    assert 'CONSOLE_JOBS["SCHEDULES"]' in page and f"/jobs/schedules/{schedule.pk}/edit" not in page
    assert client.get(f"/jobs/schedules/{schedule.pk}/edit").status_code == 403
    settings.CONSOLE_JOBS = {"SCHEDULES": {}}
    assert "1 removed" in sync_settings_schedules()
    assert not Schedule.objects.filter(name="reports").exists()


def test_a_settings_schedule_of_a_denied_command_is_refused(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"SCHEDULES": {"wipe": {"command": "flush", "cron": "0 3 * * *"}}}
    assert "refused: wipe (flush is on the deny list" in sync_settings_schedules()
    assert not Schedule.objects.exists()


def test_bad_schedules_in_settings_fail_the_system_check(settings: Any) -> None:
    from console.jobs.conf import JobsSettings

    settings.CONSOLE_JOBS = {
        "SCHEDULES": {"bad": {"command": "demo_report", "cron": "99 * * * *", "timezone": "Mars/Olympus"}}
    }
    messages = " ".join(error.msg for error in JobsSettings.check())
    assert "SCHEDULES['bad']" in messages and "Bad minute" in messages and "Mars/Olympus" in messages


# --- pages --------------------------------------------------------------------------------------------------


def form(**fields: str) -> dict[str, str]:
    data = {
        "name": "Q1",
        "subcommand": "build",
        "schedule-name": "weekly-report",
        "schedule-cron": "0 6 * * 1",
        "schedule-time_zone": "Europe/Paris",
        "schedule-overlap": "skip",
        "schedule-missed": "run-once",
        "schedule-reason": "Monday numbers",
    }
    data.update(fields)
    return data


def test_a_schedule_is_created_from_the_generated_form_and_audited(client: Client, operator: User) -> None:
    client.force_login(operator)
    page = client.get("/jobs/schedules/new/demo_report/").content.decode()
    assert 'name="schedule-cron"' in page and 'name="schedule__cron"' in page
    response = client.post("/jobs/schedules/new/demo_report/", form())
    schedule = Schedule.objects.get(name="weekly-report")
    assert response.status_code == 302 and response["Location"] == f"/jobs/schedules/{schedule.pk}/"
    assert (schedule.argv, schedule.cron, schedule.time_zone, schedule.created_by) == (
        ["Q1", "build"],
        "0 6 * * 1",
        "Europe/Paris",
        operator,
    )
    saved = Event.objects.get(type="schedule.saved")
    assert saved.actor == operator and saved.data["created"] is True
    detail = client.get(f"/jobs/schedules/{schedule.pk}/").content.decode()
    assert "Next run" in detail and f"{schedule.next_run_at:%Y-%m-%d %H:%M:%S} UTC" in detail
    listing = client.get("/jobs/schedules/").content.decode()
    assert "weekly-report" in listing and "0 6 * * 1 (Europe/Paris)" in listing


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"schedule-cron": "0 25 * * *"}, "schedule-cron", "Not a cron expression (Bad hour)"),
        ({"schedule-time_zone": "Europe/Atlantis"}, "schedule-time_zone", "is not a time zone"),
        ({"schedule-cron": "", "schedule-interval_seconds": ""}, "schedule-cron", "either a cron expression"),
        ({"schedule-interval_seconds": "60"}, "schedule-cron", "not both"),
        ({"schedule-interval_seconds": "-5", "schedule-cron": ""}, "schedule-interval_seconds", "greater than"),
    ],
)
def test_bad_timing_is_a_form_error_next_to_its_field(
    client: Client, operator: User, fields: dict[str, str], field: str, message: str
) -> None:
    client.force_login(operator)
    response = client.post("/jobs/schedules/new/demo_report/", form(**fields))
    assert response.status_code == 200
    page = response.content.decode()
    error = page.split(f'id="id_{field}-error">', 1)[1].split("</span>", 1)[0]
    assert message in error
    assert not Schedule.objects.exists()


def test_a_duplicate_name_is_a_form_error(client: Client, operator: User) -> None:
    make_schedule(operator, "weekly-report")
    client.force_login(operator)
    response = client.post("/jobs/schedules/new/demo_report/", form())
    assert response.status_code == 200 and "A schedule of this name exists" in response.content.decode()


def test_editing_keeps_the_schedule_and_moves_its_next_run(client: Client, operator: User) -> None:
    schedule = make_schedule(operator, "weekly-report")
    client.force_login(operator)
    page = client.get(f"/jobs/schedules/{schedule.pk}/edit").content.decode()
    assert 'value="30 2 * * *"' in page
    response = client.post(f"/jobs/schedules/{schedule.pk}/edit", form(**{"schedule-cron": "*/5 * * * *"}))
    assert response.status_code == 302
    schedule.refresh_from_db()
    assert schedule.cron == "*/5 * * * *" and schedule.next_run_at is not None
    assert schedule.next_run_at - timezone.now() <= timedelta(minutes=5)


def test_pause_resume_and_run_now_are_audited(client: Client, operator: User) -> None:
    schedule = make_schedule(operator)
    client.force_login(operator)
    client.post(f"/jobs/schedules/{schedule.pk}/pause")
    paused = Schedule.objects.get(pk=schedule.pk)
    assert not paused.enabled and paused.next_run_at is None
    assert "none while paused" in client.get(f"/jobs/schedules/{schedule.pk}/").content.decode()
    client.post(f"/jobs/schedules/{schedule.pk}/resume")
    resumed = Schedule.objects.get(pk=schedule.pk)
    assert resumed.enabled and resumed.next_run_at is not None
    response = client.post(f"/jobs/schedules/{schedule.pk}/run")
    assert response.status_code == 302
    run = JobRun.objects.get(schedule=schedule)
    assert run.due_at is None and run.requested_by == operator
    types = list(Event.objects.filter(actor=operator).values_list("type", flat=True).order_by("position"))
    assert types[-3:] == ["schedule.paused", "schedule.resumed", "job.queued"]
    page = client.get(f"/jobs/schedules/{schedule.pk}/").content.decode()
    assert f'href="/jobs/runs/{run.pk}/"' in page and "run now" in page


def test_staff_without_the_schedule_permission_may_read_but_not_change(
    client: Client, operator: User, staff_with: Any
) -> None:
    schedule = make_schedule(operator)
    runner = staff_with(RUN, "jobs.run_changing_command")
    client.force_login(runner)
    page = client.get(f"/jobs/schedules/{schedule.pk}/").content.decode()
    assert "Run now" in page and "Pause" not in page
    for url in (f"/jobs/schedules/{schedule.pk}/pause", "/jobs/schedules/new/demo_report/"):
        response = client.post(url, form())
        assert response.status_code == 403 and SCHEDULE in response.content.decode()
    assert Event.objects.filter(type="job.denied", actor=runner).count() == 2
    assert Schedule.objects.get(pk=schedule.pk).enabled


def test_schedules_of_commands_a_user_may_not_run_are_hidden(client: Client, operator: User, staff_with: Any) -> None:
    schedule = make_schedule(operator, job_class="destructive")
    client.force_login(staff_with(RUN))
    assert "nightly" not in client.get("/jobs/schedules/").content.decode()
    assert client.get(f"/jobs/schedules/{schedule.pk}/").status_code == 403


def test_the_new_schedule_picker_goes_to_the_commands_form(client: Client, operator: User) -> None:
    client.force_login(operator)
    response = client.get("/jobs/schedules/new/?command=demo_report")
    assert response.status_code == 302 and response["Location"] == "/jobs/schedules/new/demo_report/"
    assert client.get("/jobs/schedules/new/?command=flush").status_code == 403
