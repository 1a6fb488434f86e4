"""Retention: the middle of long outputs is cut (first and last lines kept, the cut said), old runs go."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
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


def chunk_deletes(queries: CaptureQueriesContext) -> list[str]:
    table = OutputChunk._meta.db_table
    return [q["sql"] for q in queries.captured_queries if q["sql"].startswith(f'DELETE FROM "{table}"')]


def test_each_batch_deletes_a_range_of_seqs_through_the_run_seq_index(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_RUNS_DAYS": 30, "PRUNE_BATCH": 400, "PRUNE_PAUSE_SECONDS": 0}
    old = long_run(chunks=1000, lines_per_chunk=1, finished_at=timezone.now() - timedelta(days=31))
    # Other runs' output around it, so the planner has a table where the index matters.
    for _ in range(3):
        long_run(chunks=1000, lines_per_chunk=1)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {OutputChunk._meta.db_table}")
    batches: list[float] = []
    with CaptureQueriesContext(connection) as queries:
        assert delete_old_runs(jobs_settings(), time.monotonic() + 60, batches) == (1, 1000)
    deletes = chunk_deletes(queries)
    # Three ranges of seqs (1-400, 401-800, 801-1000), then the run row's (now empty) cascade: no subquery
    # choosing the rows, no scan from the start of the run's output.
    assert len(deletes) == 4 and len(batches) == 3 + 1  # and the run row's delete
    assert all("SELECT" not in sql and "seq" in sql for sql in deletes[:3])
    assert OutputChunk.objects.count() == 3000 and not JobRun.objects.filter(pk=old.pk).exists()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"EXPLAIN {deletes[1]}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
            assert "Index" in plan and "outputchunk_run_seq" in plan, plan
            assert "Seq Scan" not in plan, plan
        else:
            cursor.execute(f"EXPLAIN QUERY PLAN {deletes[1]}")
            plan = "\n".join(row[-1] for row in cursor.fetchall())
            # SQLite names the unique constraint's index sqlite_autoindex_<table>_1.
            assert re.search(r"SEARCH \S+ USING (COVERING )?INDEX \S+ \(run_id=\? AND seq>\? AND seq<\?\)", plan), plan


def test_gaps_in_the_numbering_are_jumped_not_walked(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_RUNS_DAYS": 30, "PRUNE_BATCH": 3, "PRUNE_PAUSE_SECONDS": 0}
    run = long_run(chunks=10, lines_per_chunk=1, finished_at=timezone.now() - timedelta(days=31))
    OutputChunk.objects.bulk_create(OutputChunk(run=run, seq=seq, text="late", lines=1) for seq in range(5000, 5011))
    with CaptureQueriesContext(connection) as queries:
        assert delete_old_runs(jobs_settings(), time.monotonic() + 60) == (1, 21)
    # 1-3, 4-6, 7-9, 10-12, 13-15 (empty: one probe finds 5000), 5000-5002 ... 5009-5011, the run's cascade.
    assert len(chunk_deletes(queries)) == 4 + 1 + 4 + 1
    assert not JobRun.objects.filter(pk=run.pk).exists()


def test_a_trimmed_run_is_deleted_later_and_an_interrupted_delete_goes_on_next_tick(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {
        "KEEP_OUTPUT_LINES": [20, 20],
        "KEEP_RUNS_DAYS": 30,
        "PRUNE_BATCH": 5,
        "PRUNE_PAUSE_SECONDS": 0,
    }
    run = long_run(chunks=100, lines_per_chunk=2, finished_at=timezone.now() - timedelta(days=31))
    assert trim_long_outputs(jobs_settings(), time.monotonic() + 60) == (1, 80)
    assert list(run.chunks.values_list("seq", flat=True).order_by("seq")) == [*range(1, 11), *range(91, 101)]
    # A deadline already past: one batch goes, the run stays for the next tick.
    assert delete_old_runs(jobs_settings(), time.monotonic() - 1) == (0, 5)
    assert JobRun.objects.filter(pk=run.pk).exists()
    assert list(run.chunks.values_list("seq", flat=True).order_by("seq")) == [*range(6, 11), *range(91, 101)]
    assert delete_old_runs(jobs_settings(), time.monotonic() + 60) == (1, 15)
    assert not JobRun.objects.filter(pk=run.pk).exists()
    assert not OutputChunk.objects.filter(run_id=run.pk).exists()


@pytest.mark.parametrize("value", [[5], [-1, 5], "10"])
def test_bad_output_limits_fail_the_system_check(settings: Any, value: Any) -> None:
    from console.jobs.conf import JobsSettings

    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": value}
    assert JobsSettings.check()


def test_the_tick_duty_reports_what_it_did(db: None, settings: Any) -> None:
    settings.CONSOLE_JOBS = {"KEEP_OUTPUT_LINES": [10, 10]}
    long_run()
    assert prune() == "0 old runs deleted (0 output chunks), 1 outputs trimmed (98 chunks cut)"
