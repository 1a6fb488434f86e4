"""Retention: the middle of long outputs is cut (first and last lines kept, the cut said), old runs go."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from console.jobs.conf import jobs_settings
from console.jobs.models import JobRun, OutputChunk, Status
from console.jobs.retention import delete_old_runs, prune, trim_long_outputs


def long_run(chunks: int = 100, lines_per_chunk: int = 10, **fields: Any) -> JobRun:
    fields.setdefault("status", Status.SUCCEEDED)
    fields.setdefault("finished_at", timezone.now())
    fields.setdefault("command", "demo_flood")
    run = JobRun.objects.create(line_count=chunks * lines_per_chunk, last_seq=chunks, **fields)
    OutputChunk.objects.bulk_create(
        OutputChunk(
            run=run,
            seq=seq,
            text="\n".join(f"line {(seq - 1) * lines_per_chunk + i + 1}" for i in range(lines_per_chunk)),
            lines=lines_per_chunk,
        )
        for seq in range(1, chunks + 1)
    )
    return run


def test_a_long_finished_output_keeps_its_first_and_last_lines_and_says_what_was_cut(
    db: None, settings: Any, client: Client, operator: User
) -> None:
    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": [100, 50]}
    run = long_run()
    assert trim_long_outputs(jobs_settings(), time.monotonic() + 60) == (1, 85)
    run.refresh_from_db()
    kept = list(run.chunks.order_by("seq").values_list("seq", flat=True))
    assert kept == [*range(1, 11), *range(96, 101)]
    assert (run.cut_lines, run.cut_after_seq, run.cut_before_seq) == (850, 10, None)
    client.force_login(operator)
    page = client.get(f"/jobs/runs/{run.pk}/").content.decode()
    assert "850 lines from the middle cut by" in page
    text = b"".join(client.get(f"/jobs/runs/{run.pk}/output.txt").streaming_content).decode()  # type: ignore[attr-defined]
    assert "line 100\n[… 850 lines cut here by the output retention …]\nline 951\n" in text
    assert text.endswith("line 1000\n")
    # A second pass finds nothing more to do.
    assert trim_long_outputs(jobs_settings(), time.monotonic() + 60) == (0, 0)


def test_per_command_limits_and_running_runs(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": [10, 10], "KEEP_OUTPUT_LINES_BY_COMMAND": {"demo_flood": [0, 20]}}
    run = long_run()
    running = long_run(status=Status.RUNNING, finished_at=None)
    trim_long_outputs(jobs_settings(), time.monotonic() + 60)
    assert list(run.chunks.values_list("seq", flat=True).order_by("seq")) == [99, 100]
    assert running.chunks.count() == 100  # a running job's output is cut only once it ends


def test_a_cut_interrupted_by_the_budget_is_finished_by_the_next_tick(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": [10, 10], "PRUNE_BATCH": 7}
    run = long_run()
    # A deadline already past: one batch, then the tick stops, the cut recorded.
    assert trim_long_outputs(jobs_settings(), time.monotonic() - 1) == (0, 7)
    run.refresh_from_db()
    assert (run.cut_lines, run.cut_after_seq, run.cut_before_seq) == (980, 1, 100)
    assert trim_long_outputs(jobs_settings(), time.monotonic() + 60) == (1, 91)
    assert list(run.chunks.values_list("seq", flat=True).order_by("seq")) == [1, 100]


def test_old_finished_runs_are_deleted_with_their_output_in_batches(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_RUNS_DAYS": 30, "KEEP_RUNS_DAYS_BY_COMMAND": {"keep_me": 0}, "PRUNE_BATCH": 40}
    long_ago = timezone.now() - timedelta(days=31)
    old = long_run(finished_at=long_ago)
    recent = long_run(finished_at=timezone.now() - timedelta(days=29))
    forever = long_run(command="keep_me", finished_at=long_ago)
    still_running = long_run(status=Status.RUNNING, finished_at=None, queued_at=long_ago)
    assert delete_old_runs(jobs_settings(), time.monotonic() + 60) == (1, 100)
    assert not JobRun.objects.filter(pk=old.pk).exists()
    assert not OutputChunk.objects.filter(run_id=old.pk).exists()
    assert set(JobRun.objects.values_list("pk", flat=True)) == {recent.pk, forever.pk, still_running.pk}


def test_old_runs_are_kept_for_ever_unless_the_site_opts_in(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_RUNS_DAYS_BY_COMMAND": {"prune_me": 30}}
    long_ago = timezone.now() - timedelta(days=3650)
    kept = long_run(finished_at=long_ago)
    pruned = long_run(command="prune_me", finished_at=long_ago)
    assert jobs_settings().keep_runs_days == 0
    assert delete_old_runs(jobs_settings(), time.monotonic() + 60) == (1, 100)
    assert set(JobRun.objects.values_list("pk", flat=True)) == {kept.pk}
    assert not OutputChunk.objects.filter(run_id=pruned.pk).exists()


@pytest.mark.parametrize("value", [[5], [-1, 5], "10"])
def test_bad_output_limits_fail_the_system_check(settings: Any, value: Any) -> None:
    from console.jobs.conf import JobsSettings

    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": value}
    assert JobsSettings.check()


def test_the_tick_duty_reports_what_it_did(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": [10, 10]}
    long_run()
    assert prune() == "0 old runs deleted (0 output chunks), 1 outputs trimmed (98 chunks cut)"
