"""The warm runner: one preloaded ``manage.py console_warm_runner`` per worker process forks each run's child.

A fresh ``manage.py`` pays for a new interpreter, Django's set-up, every app's imports and the system checks
before the command's first line (seconds of CPU on a busy machine). The warm runner pays that once: it sets
Django up, imports every management command, runs the checks (warming what they cache), closes every database
connection and then waits on a unix socket. For a run, the worker sends it the run's id and command with the
write ends of two pipes; it forks, and the child becomes what a fresh process would be: its own session and
process group, stdin on /dev/null, stdout and stderr on those pipes (unbuffered, like ``python -u``), no
inherited database connection, new random state, and then ``manage.py console_job <run> <command>`` exactly as
the fresh process runs it. The real arguments, secrets included, are read and unsealed by that child only: the
warm runner never sees them, and they leave no trace on any command line.

The warm runner is the child's parent, so it reaps it and sends its exit code (``-N`` for signal N, as
``subprocess`` reports it) back on a socket of that run. When the worker goes away the warm runner stops
taking requests, waits for the children it started (the reaper deals with those, as with a fresh child whose
worker died) and exits. When the warm runner dies, the worker starts a new one for its next run.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import random
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import IO, NoReturn

import structlog
from django.core import checks
from django.core.management import execute_from_command_line, get_commands, load_command_class
from django.db import connections

from console.core.processes import child_env, manage_argv
from console.jobs.conf import jobs_settings

log = structlog.get_logger(__name__)

LAUNCHER = "console_job"
SERVER = "console_warm_runner"
READY = b"ready"
MESSAGE_SIZE = 4096
# Set-up on a loaded machine takes several seconds; after this long the run starts fresh instead.
START_TIMEOUT = 120.0
REPLY_TIMEOUT = 30.0
ORPHAN_POLL_SECONDS = 0.05


class WarmUnavailable(Exception):
    """No warm runner could start or answer: the run starts in a fresh process instead."""


# --- the worker's side ----------------------------------------------------------------------------------


@dataclass
class WarmProcess:
    """A run's child forked by the warm runner, with what the runner needs of ``subprocess.Popen``."""

    pid: int
    stdout: IO[bytes]
    stderr: IO[bytes]
    reply: socket.socket
    returncode: int | None = None
    ended_unobserved: bool = field(default=False)

    def _receive(self, *, block: bool) -> None:
        if self.returncode is not None or self.ended_unobserved:
            return
        self.reply.setblocking(block)
        try:
            message = self.reply.recv(MESSAGE_SIZE)
        except BlockingIOError:
            return
        except OSError:
            message = b""
        if message:
            self.returncode = int(json.loads(message)["exit"])
            self.reply.close()
            return
        # The warm runner died before its child: the child lives on (orphaned) and nobody can learn its exit
        # code, but its end can still be seen.
        while block and _alive(self.pid):
            time.sleep(ORPHAN_POLL_SECONDS)
        if not _alive(self.pid):
            self.ended_unobserved = True
            self.reply.close()

    def ended(self) -> bool:
        self._receive(block=False)
        return self.returncode is not None or self.ended_unobserved

    def wait(self) -> int | None:
        self._receive(block=True)
        return self.returncode


def _alive(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


class WarmRunner:
    """The worker process's handle on its warm runner: started lazily, restarted when it died."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = subprocess.Popen(
                manage_argv(SERVER, str(theirs.fileno())),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=[theirs.fileno()],
                close_fds=True,
            )
        except OSError as exc:
            mine.close()
            raise WarmUnavailable(f"Could not start the warm runner: {exc}") from exc
        finally:
            theirs.close()
        self.control = mine
        self.control.settimeout(START_TIMEOUT)
        try:
            ready = self.control.recv(MESSAGE_SIZE)
        except OSError:
            ready = b""
        if ready != READY:
            self.close()
            raise WarmUnavailable("The warm runner did not start (its errors are in the worker's log).")
        log.info("jobs.warm_runner.started", pid=self.process.pid)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        """Let it go: it exits once the runs it started have ended (``wait`` reaps it when it is already gone)."""
        self.control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=0)

    def spawn(self, run_id: int, command: str) -> WarmProcess:
        out_read, out_write = os.pipe()
        err_read, err_write = os.pipe()
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"run_id": run_id, "command": command}).encode()
        try:
            socket.send_fds(self.control, [request], [theirs.fileno(), out_write, err_write])
        except OSError as exc:
            for fd in (out_read, err_read):
                os.close(fd)
            mine.close()
            raise WarmUnavailable(f"The warm runner is gone: {exc}") from exc
        finally:
            # The child holds the write ends now: the worker reads EOF when the child (and its children) exit.
            for fd in (out_write, err_write):
                os.close(fd)
            theirs.close()
        mine.settimeout(REPLY_TIMEOUT)
        try:
            answer = mine.recv(MESSAGE_SIZE)
        except OSError:
            answer = b""
        if "pid" not in (json.loads(answer) if answer else {}):
            for fd in (out_read, err_read):
                os.close(fd)
            mine.close()
            raise WarmUnavailable("The warm runner did not fork the run.")
        return WarmProcess(
            pid=int(json.loads(answer)["pid"]),
            stdout=os.fdopen(out_read, "rb", buffering=0),
            stderr=os.fdopen(err_read, "rb", buffering=0),
            reply=mine,
        )


_runner: WarmRunner | None = None
_lock = threading.Lock()


def _current(env: dict[str, str]) -> WarmRunner:
    """This process's warm runner for ``env``: a dead one, or one started for other settings, is replaced."""
    global _runner
    with _lock:
        if _runner is not None and (not _runner.alive() or _runner.env != env):
            changed = sorted(key for key in env.keys() | _runner.env.keys() if env.get(key) != _runner.env.get(key))
            log.info("jobs.warm_runner.replaced", pid=_runner.process.pid, alive=_runner.alive(), changed=changed)
            _runner.close()
            _runner = None
        if _runner is None:
            _runner = WarmRunner(env)
        return _runner


# Variables that change while a process lives without changing what a run would see (pytest names the test).
VOLATILE = frozenset({"PYTEST_CURRENT_TEST"})


def _env() -> dict[str, str]:
    # The run's id is set by the forked child itself: the warm runner serves every run.
    env = child_env(CONSOLE_JOB_RUN_ID="")
    return {key: value for key, value in env.items() if key not in VOLATILE}


def ensure_started() -> int:
    """Start this process's warm runner now rather than at its first run; its pid (``WarmUnavailable``)."""
    return _current(_env()).process.pid


def prestart() -> None:
    """In a worker that is starting: bring the warm runner up in the background, before the first run asks."""
    if not jobs_settings().warm_start:
        return

    def start() -> None:
        try:
            ensure_started()
        except WarmUnavailable as exc:
            log.warning("jobs.warm_runner.unavailable", error=str(exc))

    # A run arriving meanwhile waits for it (the lock in _current) instead of starting a second one.
    threading.Thread(target=start, name="warm-runner-start", daemon=True).start()


def spawn(run_id: int, command: str) -> WarmProcess:
    """Fork ``manage.py console_job <run_id> <command>`` from the warm runner, starting it when needed.

    ``WarmUnavailable`` when no warm runner starts or answers, even after one restart.
    """
    env = _env()
    runner = _current(env)
    try:
        return runner.spawn(run_id, command)
    except WarmUnavailable:
        log.warning("jobs.warm_runner.restarted", pid=runner.process.pid)
        with _lock:
            global _runner
            if _runner is runner:
                runner.close()
                _runner = None
        return _current(env).spawn(run_id, command)


def _forget_after_fork() -> None:
    """A process forked from a worker (Huey's process workers) starts its own warm runner, and keeps none open."""
    global _runner, _lock
    if _runner is not None:
        with contextlib.suppress(OSError):
            _runner.control.close()
    _runner = None
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


# --- the warm runner's side -----------------------------------------------------------------------------


def preload() -> None:
    """Do once what every fresh child would do: import the commands, run the checks; then hold no connection."""
    for name, app in get_commands().items():
        # A command that fails to import fails the same way in its run, where its output shows why.
        with contextlib.suppress(Exception):
            load_command_class(app, name)
    with contextlib.suppress(Exception):
        checks.run_checks()
    connections.close_all()
    # Objects made so far are never freed: keeping them out of the collector keeps their pages shared.
    gc.collect()
    gc.freeze()


def serve(control_fd: int) -> None:
    """Fork a child per request on ``control_fd`` until the worker closes it, then wait for the children."""
    control = socket.socket(fileno=control_fd)
    # Ctrl-C in the worker's terminal is for the worker: this process ends when the worker lets it go.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    preload()
    control.sendall(READY)
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ)
    children: dict[int, tuple[socket.socket, int | None]] = {}  # pid -> (reply socket, pidfd)
    accepting = True
    use_pidfd = hasattr(os, "pidfd_open")
    while accepting or children:
        ready = selector.select(timeout=None if use_pidfd else ORPHAN_POLL_SECONDS)
        for key, _ in ready:
            if key.fileobj is control:
                accepting = _accept(control, selector, children, use_pidfd=use_pidfd)
        _reap(selector, children)
    selector.close()


def _accept(
    control: socket.socket,
    selector: selectors.DefaultSelector,
    children: dict[int, tuple[socket.socket, int | None]],
    *,
    use_pidfd: bool,
) -> bool:
    try:
        message, fds, _flags, _address = socket.recv_fds(control, MESSAGE_SIZE, 3)
    except OSError:
        message, fds = b"", []
    if not message:
        # The worker is gone (or let this runner go): take no more requests.
        selector.unregister(control)
        control.close()
        for fd in fds:
            os.close(fd)
        return False
    reply = socket.socket(fileno=fds[0])
    request = json.loads(message)
    sys.stdout.flush()
    sys.stderr.flush()
    selector_fd = selector.fileno()
    pid = os.fork()
    if pid == 0:
        inherited = [control.fileno(), selector_fd, *(sock.fileno() for sock, _ in children.values())]
        inherited += [pidfd for _, pidfd in children.values() if pidfd is not None]
        _child(int(request["run_id"]), str(request["command"]), reply, stdout=fds[1], stderr=fds[2], close=inherited)
    for fd in fds[1:]:
        os.close(fd)
    pidfd = None
    if use_pidfd:
        pidfd = os.pidfd_open(pid)
        selector.register(pidfd, selectors.EVENT_READ)
    children[pid] = (reply, pidfd)
    return True


def _reap(selector: selectors.BaseSelector, children: dict[int, tuple[socket.socket, int | None]]) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == 0:
            continue
        reply, pidfd = children.pop(pid)
        if pidfd is not None:
            selector.unregister(pidfd)
            os.close(pidfd)
        with contextlib.suppress(OSError):
            reply.sendall(json.dumps({"exit": os.waitstatus_to_exitcode(status)}).encode())
        reply.close()


def _child(run_id: int, command: str, reply: socket.socket, *, stdout: int, stderr: int, close: list[int]) -> NoReturn:
    """In the forked child: become what a fresh ``manage.py console_job`` process would be, run it, exit."""
    code = 1
    try:
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.setsid()
        # Told only now that its process group exists, the worker can stop the run from its first moment.
        reply.sendall(json.dumps({"pid": os.getpid()}).encode())
        reply.close()
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(stdout, 1)
        os.dup2(stderr, 2)
        for fd in (devnull, stdout, stderr):
            os.close(fd)
        _fresh_streams()
        for sig in (signal.SIGTERM, signal.SIGCHLD, signal.SIGHUP):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _drop_inherited_connections()
        # CPython re-seeds ``random`` after a fork already; said here too, so no child repeats another's draws.
        random.seed()
        os.environ["CONSOLE_JOB_RUN_ID"] = str(run_id)
        code = _launch(run_id, command)
    except BaseException:
        with contextlib.suppress(BaseException):
            traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fresh_streams() -> None:
    """stdin, stdout and stderr on the new descriptors, unbuffered as the fresh child's ``python -u``."""
    encoding = sys.stdout.encoding if sys.stdout else "utf-8"
    sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding=encoding)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding=encoding, write_through=True)
    sys.stderr = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding=encoding, errors="backslashreplace", write_through=True
    )


def _drop_inherited_connections() -> None:
    """Forget any database connection the warm runner held, without closing it: closing would end the parent's."""
    for connection in connections.all(initialized_only=True):
        connection.connection = None
        connection.in_atomic_block = False
        connection.needs_rollback = False


def _launch(run_id: int, command: str) -> int:
    """``manage.py console_job <run_id> <command>`` in this process; its exit code, as the interpreter gives it."""
    try:
        execute_from_command_line([sys.argv[0], LAUNCHER, str(run_id), command])
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        print(exc.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # A fresh interpreter ends on an unhandled SIGINT by re-raising it on itself.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        traceback.print_exc()
        return 1
    return 0
