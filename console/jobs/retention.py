"""Retention: cut the middle of long outputs and delete old runs, in short batches from the tick.

A finished run keeps its first and last lines (``KEEP_OUTPUT_LINES``, per command
``KEEP_OUTPUT_LINES_BY_COMMAND``); the chunks between are deleted and the run says how many lines went and
where. Finished runs older than ``KEEP_RUNS_DAYS`` go with their output. Every delete removes at most
``PRUNE_BATCH`` chunks in its own short transaction, so a runner appending output to another run never waits
long for a lock (on SQLite, where each write transaction holds the one database lock, that is the point).
A tick does a bounded amount of work; what is left is carried on by the next, from the rows themselves.
"""

from __future__ import annotations

import time
from datetime import timedelta

from django.db.models import QuerySet, Sum
from django.utils import timezone

from console.jobs.conf import JobsSettings, jobs_settings
from console.jobs.models import JobRun, OutputChunk

# One tick prunes for at most this long; the next tick goes on.
TICK_BUDGET_SECONDS = 20.0


def prune(budget: float = TICK_BUDGET_SECONDS) -> str:
    """The tick's retention duty: old runs first (they free the most), then long outputs."""
    conf = jobs_settings()
    deadline = time.monotonic() + budget
    runs, chunks = delete_old_runs(conf, deadline)
    trimmed, cut = trim_long_outputs(conf, deadline)
    return f"{runs} old runs deleted ({chunks} output chunks), {trimmed} outputs trimmed ({cut} chunks cut)"


def _delete_chunks(
    run_id: int,
    conf: JobsSettings,
    deadline: float,
    *,
    after: int = 0,
    before: int | None = None,
    batches: list[float] | None = None,
) -> tuple[int, bool]:
    """Delete the run's chunks with ``after < seq < before`` in batches; (how many, whether all went).

    A batch is a range of ``PRUNE_BATCH`` consecutive seqs, ``DELETE ... WHERE run_id = %s AND seq BETWEEN
    %s AND %s``: a range scan of the (run, seq) unique index that touches only the rows it deletes. Picking
    the next batch with ``ORDER BY seq LIMIT`` instead would walk, on PostgreSQL, every index entry the
    earlier batches left dead until a vacuum, so each batch would cost more than the last. Each batch's
    duration is appended to ``batches`` when given.
    """
    chunks = OutputChunk.objects.filter(run_id=run_id)
    # The run is finished, so no chunk is added above the last one there is now.
    last = chunks.order_by("-seq").values_list("seq", flat=True).first()
    if last is None:
        return 0, True
    if before is not None:
        last = min(last, before - 1)
    deleted = 0
    low = after + 1
    while low <= last:
        high = min(low + conf.prune_batch - 1, last)
        began = time.perf_counter()
        # One statement, its own transaction (autocommit): no lock outlives the batch.
        gone, _ = chunks.filter(seq__gte=low, seq__lte=high).delete()
        if batches is not None:
            batches.append(time.perf_counter() - began)
        deleted += gone
        low = high + 1
        if not gone:
            # A gap in the numbering (the middle cut earlier, or a tick that stopped half-way): go on from
            # the next chunk there is, found by one index probe, rather than through the empty ranges.
            following = chunks.filter(seq__gte=low, seq__lte=last).order_by("seq").values_list("seq", flat=True)
            next_seq = following.first()
            if next_seq is None:
                return deleted, True
            low = next_seq
            continue
        if low > last:
            return deleted, True
        if time.monotonic() > deadline:
            return deleted, False
        # Let waiting writers in: SQLite's busy handler retries every 25 ms or less in its first 100 ms of
        # waiting, so a runner blocked by the last batch gets the lock in this pause rather than starving
        # behind the next batch; on PostgreSQL it spreads the write load.
        time.sleep(conf.prune_pause_seconds)
    return deleted, True


def delete_old_runs(conf: JobsSettings, deadline: float, batches: list[float] | None = None) -> tuple[int, int]:
    """Delete finished runs older than their command's retention, their output first, in batches.

    Each batch's duration, and each run row's delete, is appended to ``batches`` when given.
    """
    now = timezone.now()
    runs = chunks = 0
    commands = set(JobRun.objects.final().values_list("command", flat=True).distinct())
    for command in sorted(commands):
        days = conf.keep_runs_days_by_command.get(command, conf.keep_runs_days)
        if not days:
            continue
        old = JobRun.objects.final().filter(command=command, finished_at__lt=now - timedelta(days=days))
        for run_id in old.order_by("pk").values_list("pk", flat=True).iterator():
            gone, done = _delete_chunks(run_id, conf, deadline, batches=batches)
            chunks += gone
            if not done:
                return runs, chunks
            began = time.perf_counter()
            JobRun.objects.filter(pk=run_id).delete()
            if batches is not None:
                batches.append(time.perf_counter() - began)
            runs += 1
            if time.monotonic() > deadline:
                return runs, chunks
    return runs, chunks


def trim_long_outputs(conf: JobsSettings, deadline: float, batches: list[float] | None = None) -> tuple[int, int]:
    """Cut the middle of finished runs' outputs longer than their first + last lines kept.

    Each batch's duration is appended to ``batches`` when given.
    """
    trimmed = cut = 0
    # A run whose cut is recorded but not yet deleted keeps cut_before_seq until its last chunk in the cut goes.
    pending = JobRun.objects.filter(cut_before_seq__isnull=False).only("pk", "cut_after_seq", "cut_before_seq")
    long_runs = JobRun.objects.final().filter(cut_after_seq__isnull=True, line_count__gt=0)
    for run in [*pending, *long_runs.only("pk", "command", "line_count", "last_seq")]:
        if run.cut_after_seq is None:
            head, tail = conf.output_kept_for(run.command)
            if run.line_count <= head + tail or not _mark_cut(run, head, tail):
                continue
        assert run.cut_after_seq is not None and run.cut_before_seq is not None
        gone, done = _delete_chunks(
            run.pk, conf, deadline, after=run.cut_after_seq, before=run.cut_before_seq, batches=batches
        )
        cut += gone
        if not done:
            break
        JobRun.objects.filter(pk=run.pk).update(cut_before_seq=None)
        trimmed += 1
    return trimmed, cut


def _mark_cut(run: JobRun, head: int, tail: int) -> bool:
    """Work out which chunks hold the first ``head`` and last ``tail`` lines and record the cut between them.

    The cut is recorded before any chunk is deleted, so a tick that stops half-way leaves a run whose page
    already says what goes, and the next tick finishes the deletion.
    """
    chunks = OutputChunk.objects.filter(run_id=run.pk)
    after = _seq_reaching(chunks.order_by("seq"), head) if head else 0
    before = _seq_reaching(chunks.order_by("-seq"), tail) if tail else run.last_seq + 1
    if after is None or before is None or before - after <= 1:
        return False
    lines = chunks.filter(seq__gt=after, seq__lt=before).aggregate(n=Sum("lines"))["n"] or 0
    if not lines:
        return False
    JobRun.objects.filter(pk=run.pk).update(cut_lines=lines, cut_after_seq=after, cut_before_seq=before)
    run.cut_lines, run.cut_after_seq, run.cut_before_seq = lines, after, before
    return True


def _seq_reaching(chunks: QuerySet[OutputChunk], lines: int) -> int | None:
    """The seq of the chunk at which ``lines`` lines are reached, walking ``chunks`` in their order."""
    seen = 0
    seq = None
    for seq, count in chunks.values_list("seq", "lines").iterator(chunk_size=1000):
        seen += count
        if seen >= lines:
            return seq
    return seq
