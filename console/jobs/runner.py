"""The runner: the body of the job task, which runs ``manage.py <command>`` as a child and records its output.

The child is forked from the worker's warm runner (jobs/warm.py) or, with ``WARM_START`` off, for a command in
``FRESH_START``, or when no warm runner answers, started as a fresh ``manage.py`` process. Both are the same
to the rest of this module: a process group of their own, two pipes, an exit code.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, Protocol

import structlog
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from console.core.processes import child_env, manage_argv
from console.events.pipeline import emit
from console.jobs import declarations
from console.jobs.conf import JobsSettings, jobs_settings
from console.jobs.introspect import MASK
from console.jobs.models import LIVE, JobRun, OutputChunk, Status, Stream
from console.jobs.output import LineSplitter
from console.jobs.vault import Unsealable
from console.jobs.warm import LAUNCHER, WarmUnavailable, spawn

log = structlog.get_logger(__name__)
READ_SIZE = 1 << 16
STATUS_CHECK_SECONDS = 0.5


class Child(Protocol):
    """A run's child process as the runner sees it, however it was started."""

    @property
    def pid(self) -> int: ...
    @property
    def stdout(self) -> IO[bytes]: ...
    @property
    def stderr(self) -> IO[bytes]: ...
    @property
    def returncode(self) -> int | None: ...
    def ended(self) -> bool: ...
    def wait(self) -> int | None: ...


@dataclass
class FreshProcess:
    """A fresh ``manage.py console_job`` process."""

    popen: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdout(self) -> IO[bytes]:
        assert self.popen.stdout is not None
        return self.popen.stdout

    @property
    def stderr(self) -> IO[bytes]:
        assert self.popen.stderr is not None
        return self.popen.stderr

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def ended(self) -> bool:
        return self.popen.poll() is not None

    def wait(self) -> int | None:
        return self.popen.wait()


def start_fresh(run: JobRun) -> FreshProcess:
    # The launcher reads the real arguments from the run: secrets never reach a command line.
    return FreshProcess(
        subprocess.Popen(
            manage_argv(LAUNCHER, str(run.pk), run.command),
            env=child_env(CONSOLE_JOB_RUN_ID=str(run.pk)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
        )
    )


def start_child(run: JobRun, conf: JobsSettings) -> Child:
    """The run's child, forked warm when the settings allow and a warm runner answers, else started fresh."""
    if conf.starts_warm(run.command):
        try:
            return spawn(run.pk, run.command)
        except WarmUnavailable as exc:
            log.warning("job.warm_start_failed", run_id=run.pk, error=str(exc))
    return start_fresh(run)


def claim(run_id: int) -> JobRun | None:
    """Move the run from queued to running, once: a second delivery of the task finds nothing to claim."""
    now = timezone.now()
    try:
        with transaction.atomic():
            claimed = JobRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
                status=Status.RUNNING,
                started_at=now,
                heartbeat_at=now,
                worker_host=socket.gethostname(),
                worker_pid=os.getpid(),
            )
    except IntegrityError:
        # The per-command lock: another run of this exclusive command is live.
        JobRun.objects.filter(pk=run_id, status=Status.QUEUED).update(
            status=Status.FAILED, finished_at=now, note="Not started: another run of this command was running."
        )
        return None
    return JobRun.objects.get(pk=run_id) if claimed else None


def execute(run_id: int) -> str:
    run = claim(run_id)
    if run is None:
        return "not claimed"
    conf = jobs_settings()
    try:
        process = start_child(run, conf)
    except OSError as exc:
        _finish(run, status=Status.FAILED, exit_code=None, note=f"Could not start: {exc}", capture=None)
        return "failed to start"
    with transaction.atomic():
        JobRun.objects.filter(pk=run.pk).update(child_pid=process.pid)
        run.child_pid = process.pid
        emit(
            declarations.JOB_STARTED,
            actor=run.requested_by_id,
            **JobRun.stream_of(run.pk),
            run_id=run.pk,
            command=run.command,
            worker_host=run.worker_host,
            worker_pid=run.worker_pid,
            child_pid=process.pid,
        )
    capture = Capture(run=run, process=process, conf=conf)
    try:
        capture.pump()
    except BaseException:
        # Whatever broke the runner, the child must not outlive it unobserved.
        kill_group(process.pid)
        process.wait()
        with contextlib.suppress(Exception):
            capture.flush(final=True)
            _finish(run, status=Status.FAILED, exit_code=process.returncode, note="The runner failed.", capture=capture)
        raise
    exit_code = process.returncode
    if capture.stopped_by_user:
        status, note = Status.CANCELLED, "Stopped on request."
    elif capture.timed_out:
        status, note = Status.FAILED, f"Timed out after {conf.timeout_for(run.command):g} s."
    elif exit_code is None:
        status, note = Status.FAILED, "Ended with no exit code to tell: the warm runner that started it died."
    else:
        status, note = (Status.SUCCEEDED, "") if exit_code == 0 else (Status.FAILED, f"Exited with code {exit_code}.")
    _finish(run, status=status, exit_code=exit_code, note=note, capture=capture)
    return str(status)


@dataclass
class Capture:
    """Reads the child's stdout and stderr and writes them as numbered chunks, a batch at a time."""

    run: JobRun
    process: Child
    conf: JobsSettings
    seq: int = 0
    lines: int = 0
    pending: list[tuple[str, list[str]]] = field(default_factory=list)
    pending_bytes: int = 0
    partial: str = ""
    stopped_by_user: bool = False
    timed_out: bool = False
    term_sent_at: float | None = None
    killed: bool = False
    written_at: float = 0.0

    def pump(self) -> None:
        splitters = {Stream.STDOUT: LineSplitter(), Stream.STDERR: LineSplitter()}
        selector = selectors.DefaultSelector()
        selector.register(self.process.stdout.fileno(), selectors.EVENT_READ, Stream.STDOUT)
        selector.register(self.process.stderr.fileno(), selectors.EVENT_READ, Stream.STDERR)
        started = time.monotonic()
        next_flush = started + self.conf.flush_seconds
        next_beat = started + self.conf.heartbeat_seconds
        next_check = started + STATUS_CHECK_SECONDS
        try:
            while selector.get_map() or not self.process.ended():
                if selector.get_map():
                    ready = selector.select(timeout=max(0.0, next_flush - time.monotonic()))
                else:
                    # Pipes closed (or handed to a grandchild) while the child lives on: wait for its exit.
                    ready = []
                    time.sleep(min(0.05, self.conf.flush_seconds))
                for key, _ in ready:
                    data = os.read(key.fd, READ_SIZE)
                    stream = key.data
                    if not data:
                        selector.unregister(key.fd)
                        self._add(stream, splitters[stream].finish())
                        continue
                    self.pending_bytes += len(data)
                    self._add(stream, splitters[stream].feed(data))
                now = time.monotonic()
                # Leading edge: the first lines after a quiet spell go out at once; a busy stream is batched.
                quiet = self.pending and now - self.written_at >= self.conf.flush_seconds
                if self.pending_bytes >= self.conf.flush_bytes or now >= next_flush or quiet:
                    current = self._mask(splitters[Stream.STDOUT].current or splitters[Stream.STDERR].current)
                    self.flush(partial=current, beat=now >= next_beat)
                    next_flush = now + self.conf.flush_seconds
                    if now >= next_beat:
                        next_beat = now + self.conf.heartbeat_seconds
                if now >= next_check:
                    next_check = now + STATUS_CHECK_SECONDS
                    self._check_stop(now - started)
                self._escalate(now)
        finally:
            selector.close()
        self.process.wait()
        self.flush(final=True)

    @cached_property
    def secrets(self) -> list[str]:
        """Secret values this run was given: masked if the command echoes them (too short ones would mask noise)."""
        try:
            sealed = self.run.secret_values()
        except Unsealable:
            return []  # the launcher cannot open them either: the command never gets them to echo
        values = [value.partition("=")[2] or value for value in sealed]
        return sorted({value for value in values if len(value) >= 4}, key=len, reverse=True)

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def _add(self, stream: str, lines: list[str]) -> None:
        if not lines:
            return
        if self.secrets:
            lines = [self._mask(line) for line in lines]
        if self.pending and self.pending[-1][0] == stream:
            self.pending[-1][1].extend(lines)
        else:
            self.pending.append((stream, lines))

    def flush(self, *, partial: str = "", beat: bool = False, final: bool = False) -> None:
        """Write waiting lines as chunks (one per stream switch) and move the run's counters in one go."""
        if not self.pending and partial == self.partial and not beat and not final:
            return
        chunks = []
        added = 0
        for stream, lines in self.pending:
            self.seq += 1
            added += len(lines)
            chunks.append(
                OutputChunk(run_id=self.run.pk, seq=self.seq, stream=stream, text="\n".join(lines), lines=len(lines))
            )
        self.pending = []
        self.pending_bytes = 0
        self.partial = "" if final else partial
        with transaction.atomic():
            if chunks:
                OutputChunk.objects.bulk_create(chunks)
            JobRun.objects.filter(pk=self.run.pk).update(
                last_seq=self.seq,
                line_count=F("line_count") + added,
                partial_line=self.partial,
                heartbeat_at=timezone.now(),
            )
        self.lines += added
        if chunks:
            self.written_at = time.monotonic()

    def _check_stop(self, elapsed: float) -> None:
        if self.term_sent_at is not None:
            return
        status = JobRun.objects.filter(pk=self.run.pk).values_list("status", flat=True).first()
        if status == Status.CANCELLING:
            self.stopped_by_user = True
        elif elapsed > self.run.timeout_seconds:
            self.timed_out = True
        else:
            return
        self.term_sent_at = time.monotonic()
        kill_group(self.process.pid, signal.SIGTERM)

    def _escalate(self, now: float) -> None:
        if self.term_sent_at is None or self.killed:
            return
        if now - self.term_sent_at >= self.conf.stop_grace_seconds:
            self.killed = True
            kill_group(self.process.pid, signal.SIGKILL)


def _finish(run: JobRun, *, status: Status, exit_code: int | None, note: str, capture: Capture | None) -> None:
    seconds = round((timezone.now() - run.started_at).total_seconds(), 3) if run.started_at else 0.0
    lines = capture.lines if capture else 0
    with transaction.atomic():
        # A run the reaper gave up on that finishes after all still gets its true ending.
        JobRun.objects.filter(pk=run.pk, status__in=[*LIVE, Status.LOST]).update(
            status=status, exit_code=exit_code, finished_at=timezone.now(), note=note, partial_line=""
        )
        run.refresh_from_db()
        if status == Status.CANCELLED:
            emit(
                declarations.JOB_STOPPED,
                actor=run.stop_requested_by_id,
                **JobRun.stream_of(run.pk),
                run_id=run.pk,
                command=run.command,
                exit_code=exit_code,
                seconds=seconds,
                lines=lines,
            )
        else:
            emit(
                declarations.JOB_FINISHED,
                actor=run.requested_by_id,
                **JobRun.stream_of(run.pk),
                run_id=run.pk,
                command=run.command,
                status=str(status),
                exit_code=exit_code,
                seconds=seconds,
                note=note,
                lines=lines,
            )
    log.info("job.ended", run_id=run.pk, status=str(status), exit_code=exit_code)


# --- the child's process group -----------------------------------------------------------------------


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` still runs (zombies waiting for a reaper do not count)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def kill_group(pgid: int, sig: int = signal.SIGKILL) -> bool:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True
