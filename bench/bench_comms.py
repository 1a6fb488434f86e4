"""Comms benchmarks: email throughput against django-post_office and django-mailer, and /messages/ at 1M rows.

Each measurement runs in its own child process with its own settings (the console's, plus the peer's app
installed and migrated into a fresh SQLite file), so the peers never touch console/settings.py. All three
send the same 5,000 messages (subject, text and HTML) through Django's SMTP backend to one local aiosmtpd
server running in this process; what is timed is the sending only (queueing is done before the clock starts).
For the console that is the worker's own loop, ``deliver_batch``: claim a batch with a conditional UPDATE,
send it over one SMTP connection, record every attempt and event.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

MESSAGES = int(os.environ.get("BENCH_COMMS_MESSAGES", "5000"))
ROWS = int(os.environ.get("BENCH_COMMS_ROWS", "1000000"))
REPEATS = int(os.environ.get("BENCH_COMMS_REPEATS", "3"))
PARTS = os.environ.get("BENCH_COMMS_PARTS", "email,table,resend,workers").split(",")
RESEND_ROWS = int(os.environ.get("BENCH_COMMS_RESEND_ROWS", "100000"))
# Whether to also run the resend operation to its end (minutes for 100,000 messages on a small machine).
RESEND_RUN = os.environ.get("BENCH_COMMS_RESEND_RUN", "1") == "1"
# How many messages the one-by-one resend path (the peer of the batched operation) resends in the same run.
RESEND_EACH = int(os.environ.get("BENCH_COMMS_RESEND_EACH", "2000"))
# The email part's systems; the peers take most of its time, so a quick run may leave them out.
SYSTEMS = os.environ.get("BENCH_COMMS_SYSTEMS", "console,console_failover,post_office,mailer").split(",")
WORKER_MESSAGES = int(os.environ.get("BENCH_COMMS_WORKER_MESSAGES", "2000"))
WORKER_REPEATS = int(os.environ.get("BENCH_COMMS_WORKER_REPEATS", "3"))
# Processes sending one message per transaction, as a site's web workers do side by side. One process alone
# queues about 106 messages/s on a 2-core x86_64 machine, and two threads of one about as much (under load):
# less than two workers deliver, so the worker scenario would measure the sender.
SENDERS = int(os.environ.get("BENCH_COMMS_SENDERS", "2"))
SUBJECT = "Your order A-1042 is confirmed"
TEXT = "Hello Ada,\n\nThank you: order A-1042 is confirmed. Total: £42.00.\n"
HTML = "<p>Hello Ada,</p>\n<p>Thank you: order <strong>A-1042</strong> is confirmed. Total: £42.00.</p>\n"


# --- child side ----------------------------------------------------------------------------------------


def _configure(system: str, db_path: str, smtp_port: int) -> None:
    import django
    from django.conf import settings

    import console.settings as base

    values = {name: getattr(base, name) for name in dir(base) if name.isupper()}
    values["INSTALLED_APPS"] = [
        *base.INSTALLED_APPS,
        *({"post_office": ["post_office"], "mailer": ["mailer"]}.get(system, [])),
    ]
    values["DATABASES"] = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": db_path,
            "OPTIONS": {
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
    # The parent names a fresh PostgreSQL database for the resend part's PostgreSQL run.
    database_url = os.environ.get("BENCH_COMMS_CHILD_DB") or os.environ.get("BENCH_DATABASE_URL")
    if database_url and system in ("table", "resend"):
        import dj_database_url

        values["DATABASES"] = {"default": dict(dj_database_url.parse(database_url))}
    smtp = {"host": "127.0.0.1", "port": smtp_port, "timeout": 30}
    if system in ("post_office", "mailer"):
        # The peers create their connections the pre-6.1 way, from EMAIL_* settings (exclusive with MAILERS).
        del values["MAILERS"]
        values.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=smtp_port, EMAIL_TIMEOUT=30)
    elif system == "console_failover":
        # The first relay is down (nothing listens on its port) and its circuit is open: every message goes
        # to the backup relay, the real server.
        down = {"host": "127.0.0.1", "port": _free_port(), "timeout": 30}
        values["MAILERS"] = {
            "default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": down},
            "backup": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": smtp},
        }
    else:
        values["MAILERS"] = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": smtp}}
    values["TASKS"] = {"default": {"BACKEND": "django.tasks.backends.dummy.DummyBackend"}}
    values["POST_OFFICE"] = {"BACKENDS": {"default": "django.core.mail.backends.smtp.EmailBackend"}, "BATCH_SIZE": 100}
    values["MAILER_EMAIL_BACKEND"] = "django.core.mail.backends.smtp.EmailBackend"
    values["CONSOLE_COMMS"] = {"BATCH_SIZE": 500}
    if system == "console_failover":
        values["CONSOLE_COMMS"]["MAILER_FAILOVER"] = {"default": ["backup"]}
    settings.configure(**values)
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, run_syncdb=True)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_console(n: int, *, first_provider_open: bool = False) -> float:
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from console.comms.classes import lookup
    from console.comms.delivery import deliver_batch
    from console.comms.models import Breaker, Message, ProviderState, Status
    from console.comms.sending import send

    cls = lookup("order_confirmation")
    assert cls is not None
    with transaction.atomic():
        for i in range(n):
            send(cls.sample(), to=f"r{i}@example.com")
    if first_provider_open:
        later = timezone.now() + timedelta(hours=1)
        ProviderState.objects.create(name="email:default", breaker=Breaker.OPEN, failures=5, probe_at=later)
    started = time.perf_counter()
    while deliver_batch(limit=500):
        pass
    elapsed = time.perf_counter() - started
    sent = Message.objects.filter(status=Status.SENT).count()
    assert sent == n, f"console sent {sent} of {n}"
    return elapsed


def _child_post_office(n: int) -> float:
    from django.db import transaction
    from post_office import mail
    from post_office.mail import send_queued_mail_until_done
    from post_office.models import STATUS, Email

    with transaction.atomic():
        for i in range(n):
            mail.send(
                [f"r{i}@example.com"],
                "console@localhost",
                subject=SUBJECT,
                message=TEXT,
                html_message=HTML,
                priority="medium",
            )
    lock = tempfile.mktemp(prefix="bench-post-office-")
    started = time.perf_counter()
    send_queued_mail_until_done(lockfile=lock, processes=1)
    elapsed = time.perf_counter() - started
    sent = Email.objects.filter(status=STATUS.sent).count()
    assert sent == n, f"post_office sent {sent} of {n}"
    return elapsed


def _child_mailer(n: int) -> float:
    from django.db import transaction
    from mailer import send_html_mail
    from mailer.engine import send_all
    from mailer.models import Message as Queued

    with transaction.atomic():
        for i in range(n):
            send_html_mail(SUBJECT, TEXT, HTML, "console@localhost", [f"r{i}@example.com"])
    started = time.perf_counter()
    send_all()
    elapsed = time.perf_counter() - started
    left = Queued.objects.count()
    assert left == 0, f"django-mailer left {left} of {n} unsent"
    return elapsed


def _child_table(rows: int) -> dict[str, float]:
    """Fill the messages table with ``rows`` rows, then time the first page of filtered views of it."""
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import RequestFactory

    from console.comms.views import message_list

    _fill(connection, rows)
    user = User.objects.create(username="bench", is_staff=True)
    factory = RequestFactory()
    results = {}
    queries = (
        "",
        "status=failed",
        "status=failed&type=order_confirmation",
        "mandatory=true&status=failed",
        "recipient=user42",
        "since=2020-01-01&until=2100-01-01&channel=email",
        # Worst case: a combination that matches nothing walks the whole policy-failure index.
        "failure_class=policy&mandatory=true",
    )
    for query in queries:
        times = []
        for _ in range(15):
            request = factory.get("/messages/?" + query)
            request.user = user
            request.htmx = False  # type: ignore[attr-defined]
            started = time.perf_counter()
            response = message_list(request)
            times.append(time.perf_counter() - started)
            assert response.status_code == 200
        results[query or "(no filter)"] = statistics.median(times[2:]) * 1000
    return results


def _child_resend(rows: int) -> dict[str, float]:
    """``rows`` failed messages (plus the peer's); time the POST that starts "resend all matching", then the
    operation itself (the batched path), and the one-by-one path (``message_resend`` per message, as the
    operation ran before) on ``RESEND_EACH`` other failed messages in the same database."""
    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.utils import timezone

    from console.comms.models import Message, Status
    from console.comms.services import resend_each
    from console.core.models import Operation
    from console.core.operations import run_operation
    from console.events import batch

    setup_test_environment()
    _fill(connection, rows + RESEND_EACH)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE comms_message SET status = 'failed', failure_class = 'temporary', channels = '[\"email\"]',"
            ' addresses = \'{"email": "r@example.com"}\', expires_at = %s',
            [timezone.now() + timedelta(days=1)],
        )
    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    result: dict[str, float] = {}
    if RESEND_RUN and RESEND_EACH:
        # The peer first, on the highest ids, out of the filter's way: they are queued, not failed, after it.
        peer = list(Message.objects.order_by("-pk").values_list("pk", flat=True)[:RESEND_EACH])[::-1]
        started = time.perf_counter()
        for begin in range(0, len(peer), 500):
            with transaction.atomic(), batch():
                resend_each(Message.objects.filter(pk__in=peer[begin : begin + 500]), actor=user, force=False)
        result["each_s"] = time.perf_counter() - started
        assert Message.objects.filter(status=Status.QUEUED).count() == RESEND_EACH
    client = Client()
    client.force_login(user)
    data = {"scope": "all", "query": "status=failed"}
    dry, starts = [], []
    for _ in range(7):
        started = time.perf_counter()
        assert client.post("/messages/resend/", data).status_code == 200
        dry.append(time.perf_counter() - started)
        started = time.perf_counter()
        response = client.post("/messages/resend/", {**data, "confirm": "1"})
        starts.append(time.perf_counter() - started)
        assert response.status_code == 302, response.status_code
    result.update(dry_ms=statistics.median(dry) * 1000, start_ms=statistics.median(starts) * 1000)
    if not RESEND_RUN:
        return result
    first = Operation.objects.order_by("pk").first()
    assert first is not None
    started = time.perf_counter()
    assert run_operation(first.pk) == "succeeded", Operation.objects.get(pk=first.pk).error
    result["run_s"] = time.perf_counter() - started
    assert Message.objects.filter(status=Status.QUEUED).count() == rows + RESEND_EACH
    return result


def _fill(connection: Any, rows: int) -> None:
    statuses = "CASE x % 10 WHEN 0 THEN 'failed' WHEN 1 THEN 'deferred' WHEN 2 THEN 'delivered' ELSE 'sent' END"
    failures = (
        "CASE x % 10 WHEN 0 THEN (CASE x % 3 WHEN 0 THEN 'recipient' WHEN 1 THEN 'policy' ELSE 'temporary' END)"
        " ELSE '' END"
    )
    types = "CASE x % 3 WHEN 0 THEN 'order_confirmation' WHEN 1 THEN 'shipping_update' ELSE 'password_reset' END"
    columns = (
        "message_type, category, mandatory, recipient, addresses, channels, context, subject, text_body, html_body,"
        " sms_text, push_title, push_body, mailer, unsubscribe_url, status, failure_class, channel, idempotency_key,"
        " time_zone, hold_reason, created_at, send_at, expires_at, updated_at"
    )
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            when = "datetime('now', '-' || (x % 2592000) || ' seconds')"
            source = f"WITH RECURSIVE cnt(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM cnt WHERE x < {rows}) SELECT"
            tail = "FROM cnt"
            email = "'user' || (x % 5000) || '@example.com'"
        else:
            when = "now() - (x % 2592000) * interval '1 second'"
            source = "SELECT"
            tail = f"FROM generate_series(1, {rows}) AS x"
            email = "'user' || (x % 5000) || '@example.com'"
        cursor.execute(
            f"INSERT INTO comms_message ({columns}) {source} {types}, 'orders', x % 3 = 2, {email},"
            " '{}', '[]', '{}',"
            f" '{SUBJECT}', 'text', '', '', '', '', 'default', '', {statuses}, {failures}, 'email', '', '', '',"
            f" {when}, {when}, {when}, {when} {tail}"
        )
        if connection.vendor == "sqlite":
            cursor.execute("ANALYZE")
        else:
            cursor.execute("ANALYZE comms_message")


def _child_workers(mode: str, n: int, workers: int) -> dict[str, float]:
    """Start ``workers`` run_huey processes (2 threads each), send ``n`` messages, time until all are sent.

    ``mode`` "one": all in one transaction; "each": one transaction per message from ``SENDERS`` processes,
    as a site sending one message per request does. The clock starts once the workers have started (their
    imports and warm runners take seconds of CPU) and runs from the first send to the last message marked sent.
    """
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from console.comms.classes import lookup
    from console.comms.models import Delivery, Status
    from console.comms.sending import send
    from console.core.processes import child_env, manage_argv

    call_command("migrate", verbosity=0)
    cls = lookup("order_confirmation")
    assert cls is not None
    argv = manage_argv("run_huey", "--workers", "2", "--worker-type", "thread", "--delay", "0.05", "--max-delay", "0.1")
    procs = [
        subprocess.Popen(
            argv, env=child_env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        for _ in range(workers)
    ]
    try:
        _wait_settled()
        workers_cpu, sender_cpu, machine = _cpu([p.pid for p in procs]), _self_cpu(), _machine_cpu()
        database_cpu = _cpu_named("postgres")
        started = time.perf_counter()
        if mode == "one":
            with transaction.atomic():
                for i in range(n):
                    send(cls.sample(), to=f"w{i}@example.com")
        else:
            # Each sender is a process of its own, as a site's web workers are (with its own dispatch window).
            connection.close()
            senders = []
            for start in range(SENDERS):
                pid = os.fork()
                if pid == 0:  # pragma: no cover - the forked sender
                    status = 1
                    try:
                        for i in range(start, n, SENDERS):
                            send(cls.sample(), to=f"w{i}@example.com")
                        connection.close()
                        status = 0
                    finally:
                        os._exit(status)
                senders.append(pid)
            for pid in senders:
                if os.waitpid(pid, 0)[1]:
                    raise RuntimeError("a sender failed")
        queued = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while Delivery.objects.filter(status=Status.SENT).count() < n:
            if time.monotonic() > deadline:
                raise RuntimeError("messages still unsent after 10 minutes")
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        busy, total = (after - before for after, before in zip(_machine_cpu(), machine, strict=True))
        return {
            "seconds": seconds,
            "queued": queued,
            # CPU seconds of the worker processes and of this sender, and how many cores the machine kept busy.
            "workers_cpu": _cpu([p.pid for p in procs]) - workers_cpu,
            "sender_cpu": _self_cpu() - sender_cpu,
            "database_cpu": _cpu_named("postgres") - database_cpu,
            "cores_busy": busy / total * (os.cpu_count() or 1) if total else 0.0,
        }
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGINT)
        for proc in procs:
            proc.wait(timeout=60)


def _wait_settled(timeout: float = 60.0) -> None:
    """Wait until the workers have started: their imports, connections and warm runners take CPU for seconds."""
    time.sleep(1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy, total = _machine_cpu()
        time.sleep(0.5)
        busy_after, total_after = _machine_cpu()
        if total_after == total or (busy_after - busy) / (total_after - total) < 0.1:
            return
    print(f"(the machine stayed busy {timeout:.0f} s after the workers started; timing anyway)", file=sys.stderr)


def _cpu(pids: list[int]) -> float:
    """User + system CPU seconds of processes ``pids`` so far (Linux /proc; 0 elsewhere)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of the line)
    return total / os.sysconf("SC_CLK_TCK")


def _cpu_named(name: str) -> float:
    """User + system CPU seconds so far of every process called ``name`` (the database server's backends)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
        except OSError:
            continue
    return _cpu(pids)


def _self_cpu() -> float:
    """CPU seconds of this process and of the senders it forked and waited for."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in (resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN))
    )


def _machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks (Linux /proc/stat; zeros elsewhere)."""
    try:
        ticks = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except OSError:
        return 0.0, 0.0
    idle = ticks[3] + ticks[4]  # idle, iowait
    return float(sum(ticks) - idle), float(sum(ticks))


def child(argv: list[str]) -> None:
    if argv[0] == "workers":
        print(json.dumps(_child_workers(argv[1], int(argv[2]), int(argv[3]))))
        return
    system, port, amount, db_path = argv[0], int(argv[1]), int(argv[2]), argv[3]
    _configure(system, db_path, port)
    if system == "table":
        print(json.dumps(_child_table(amount)))
        return
    if system == "resend":
        print(json.dumps(_child_resend(amount)))
        return
    runners: dict[str, Callable[[int], float]] = {
        "console": _child_console,
        "console_failover": functools.partial(_child_console, first_provider_open=True),
        "post_office": _child_post_office,
        "mailer": _child_mailer,
    }
    print(json.dumps({"seconds": runners[system](amount)}))


# --- parent side ---------------------------------------------------------------------------------------


def _run_child(system: str, port: int, amount: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-comms-") as tmp:
        db_path = str(Path(tmp) / "db.sqlite3")
        env = {
            **os.environ,
            **(env or {}),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            "LOG_LEVEL": "ERROR",
            "CONSOLE_VAR_DIR": tmp,
        }
        result = subprocess.run(
            [sys.executable, "-m", "bench.bench_comms", "child", system, str(port), str(amount), db_path],
            env=env,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        )
    if result.returncode != 0:
        raise RuntimeError(f"{system} benchmark failed:\n{result.stderr[-3000:]}")
    parsed: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def main() -> None:
    if "email" in PARTS:
        _email()
    if "table" in PARTS:
        _table()
    if "resend" in PARTS:
        _resend()
    if "workers" in PARTS:
        _workers()


def _resend() -> None:
    """ "Resend all matching" on SQLite and on PostgreSQL: the request, and the operation run to its end."""
    from bench.postgres import PG_URL, create_database, drop_database

    print(
        f"\nResend all matching, {RESEND_ROWS:,} failed messages, median of 7 requests; load average at start "
        f"{os.getloadavg()[0]:.1f}:\n"
    )
    print("| database | measure | result | target |")
    print("|---|---|---:|---:|")
    for database in ("SQLite", "PostgreSQL"):
        env: dict[str, str] = {}
        name = None
        if database == "PostgreSQL":
            name = create_database("bench_resend")
            if name is None:
                print("| PostgreSQL | not measured: no server at BENCH_DATABASE_URL | | |")
                continue
            env["BENCH_COMMS_CHILD_DB"] = PG_URL.rsplit("/", 1)[0] + "/" + name
        try:
            r = _run_child("resend", 0, RESEND_ROWS, env=env)
        finally:
            if name is not None:
                drop_database(name)
        print(
            f"| {database} | POST that starts the operation (records the intent) | {r['start_ms']:.0f} ms | < 200 ms |"
        )
        print(f"| {database} | POST of the dry run (counts matching and resendable) | {r['dry_ms']:.0f} ms | |")
        if "run_s" not in r:
            continue
        rate = RESEND_ROWS / r["run_s"]
        print(
            f"| {database} | the operation (batched path) in the background, to done | {r['run_s']:.1f} s "
            f"({rate:,.0f} messages/s) | completes |"
        )
        if "each_s" in r:
            each = RESEND_EACH / r["each_s"]
            print(
                f"| {database} | one by one (`message_resend` per message), {RESEND_EACH:,} messages | "
                f"{each:,.0f} messages/s | batched {rate / each:.1f}x |"
            )


# Scenarios of the worker benchmark: (label, how the messages are sent, worker processes).
SCENARIOS = (
    ("one transaction, 1 worker", "one", 1),
    ("one per transaction, 1 worker", "each", 1),
    ("one per transaction, 2 workers", "each", 2),
)


def _workers() -> None:
    """Workers on PostgreSQL + Redis against a relay that takes 20 ms per message: single sends vs a batch."""
    import asyncio
    from collections import Counter

    from aiosmtpd.controller import Controller

    from bench.postgres import PG_URL, create_database, drop_database

    class Slow:
        received: Counter[str] = Counter()

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            await asyncio.sleep(0.02)
            Slow.received.update(envelope.rcpt_tos)
            return "250 OK"

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = _free_port()
    controller = Controller(Slow(), hostname="127.0.0.1", port=port)
    controller.start()
    results: dict[str, list[float]] = {label: [] for label, _, _ in SCENARIOS}
    costs: dict[str, list[dict[str, float]]] = {label: [] for label, _, _ in SCENARIOS}
    problems: list[str] = []
    try:
        for round_ in range(WORKER_REPEATS):
            for label, mode, workers in SCENARIOS:
                name = create_database("bench_comms")
                if name is None:
                    print("(skipped: no PostgreSQL server at BENCH_DATABASE_URL)")
                    return
                Slow.received.clear()
                env = {
                    **os.environ,
                    "DJANGO_SETTINGS_MODULE": "bench.comms_site",
                    "DATABASE_URL": PG_URL.rsplit("/", 1)[0] + "/" + name,
                    "REDIS_URL": redis_url,
                    "CONSOLE_HUEY_NAME": f"{name}-{round_}",
                    "BENCH_SMTP_PORT": str(port),
                    "SECRET_KEY": "bench-" + "k" * 40,
                    "DEBUG": "0",
                    "LOG_LEVEL": "ERROR",
                }
                argv = ["child", "workers", mode, str(WORKER_MESSAGES), str(workers)]
                try:
                    done = subprocess.run(
                        [sys.executable, "-m", "bench.bench_comms", *argv],
                        env=env,
                        cwd=Path(__file__).resolve().parent.parent,
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                finally:
                    drop_database(name)
                if done.returncode:
                    raise RuntimeError(f"worker benchmark {label!r} failed:\n{done.stderr[-3000:]}")
                measured = json.loads(done.stdout.strip().splitlines()[-1])
                results[label].append(measured["seconds"])
                costs[label].append(measured)
                expected = {f"w{i}@example.com" for i in range(WORKER_MESSAGES)}
                missing = expected - set(Slow.received)
                twice = [address for address, count in Slow.received.items() if count > 1]
                if missing or twice or set(Slow.received) - expected:
                    problems.append(f"{label}: {len(missing)} missing, {len(twice)} sent more than once")
    finally:
        controller.stop()
    parallel = _parallel_speedup()
    rate = {label: WORKER_MESSAGES / statistics.median(times) for label, times in results.items()}
    base = rate["one transaction, 1 worker"]
    single = rate["one per transaction, 1 worker"]
    print(
        f"\nWorkers (run_huey, 2 threads each) on PostgreSQL + Redis, {WORKER_MESSAGES:,} messages to a local relay "
        f"taking 20 ms per message (one per transaction: sent by {SENDERS} processes), first send to last sent, "
        f"median of {WORKER_REPEATS}:\n"
    )
    print("| scenario | messages/s | ratio |")
    print("|---|---:|---:|")
    print(f"| one transaction, 1 worker | {base:,.1f} | 1.00x |")
    print(f"| one per transaction, 1 worker | {single:,.1f} | {single / base:.2f}x of one transaction (target 0.9x) |")
    two = rate["one per transaction, 2 workers"]
    print(f"| one per transaction, 2 workers | {two:,.1f} | {two / single:.2f}x of 1 worker (target 1.8x) |")
    print(
        f"\nThe floor this machine sets, measured in the same run: two processes doing pure CPU work side by side "
        f"get {parallel:.2f}x the work of one ({os.cpu_count()} cores); work that needs more than one core's worth "
        "(the scenarios below keep one core or more busy with one worker) cannot scale further than that."
    )
    print("\nDuplicates or missing messages: " + ("; ".join(problems) if problems else "none (every address once)"))
    print(
        f"\nWhere the time goes (last round; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}): the "
        "sender's queueing time, CPU per message of the worker processes and of the sender, and the cores the "
        "whole machine kept busy (workers, sender, PostgreSQL, Redis, relay) from the first send to the last sent.\n"
    )
    print("| scenario | sender queueing s | CPU ms/msg: workers | sender | PostgreSQL | cores busy |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in costs.items():
        last = runs[-1]
        worker, sender, database = (
            last[key] / WORKER_MESSAGES * 1000 for key in ("workers_cpu", "sender_cpu", "database_cpu")
        )
        print(
            f"| {label} | {last['queued']:.1f} | {worker:.1f} | {sender:.1f} | {database:.1f} "
            f"| {last['cores_busy']:.2f} |"
        )


# A child's loop of pure CPU work; it prints how long the loop took (its start-up is not timed).
_SPIN = "import time\nt = time.perf_counter()\nfor i in range(5_000_000): pass\nprint(time.perf_counter() - t)"


def _parallel_speedup() -> float:
    """How much more pure CPU work two processes get done side by side than one alone (2.0 would be perfect)."""

    def spin(count: int) -> float:
        procs = [
            subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(count)
        ]
        return max(float(proc.communicate()[0]) for proc in procs)

    # Alternating, so a change of clock speed or of the host's load affects both alike; medians of 7.
    alone, together = [], []
    for _ in range(7):
        alone.append(spin(1))
        together.append(spin(2))
    return 2 * statistics.median(alone) / statistics.median(together)


def _email() -> None:
    from aiosmtpd.controller import Controller

    class Counting:
        accepted = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Counting.accepted += 1
            return "250 OK"

    with tempfile.TemporaryDirectory() as _:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
    controller = Controller(Counting(), hostname="127.0.0.1", port=port)
    controller.start()
    runs: dict[str, list[float]] = {system: [] for system in SYSTEMS}
    try:
        # Interleaved rounds, median per system: a shared machine's load then weighs on every system alike.
        for round_ in range(REPEATS):
            for system in runs:
                if system == "mailer" and round_ > 0:
                    continue  # reported for reference; far slower, so one round
                before = Counting.accepted
                runs[system].append(_run_child(system, port, MESSAGES)["seconds"])
                accepted = Counting.accepted - before
                assert accepted == MESSAGES, f"{system}: server accepted {accepted} of {MESSAGES}"
    finally:
        controller.stop()
    seconds = {system: statistics.median(times) for system, times in runs.items()}
    print(f"Email throughput, one worker, {MESSAGES:,} messages to a local aiosmtpd (SQLite), median of {REPEATS}:\n")
    print("| system | seconds | messages/s | console speed-up |")
    print("|---|---:|---:|---:|")
    for system, label in (
        ("console", "console comms (deliver_batch)"),
        ("console_failover", "console comms, first relay down (circuit open) -> backup relay"),
        ("post_office", "django-post_office send_queued_mail"),
        ("mailer", "django-mailer send_all"),
    ):
        if system not in seconds:
            continue
        rate = MESSAGES / seconds[system]
        ratio = seconds[system] / seconds["console"]
        print(f"| {label} | {seconds[system]:.2f} | {rate:,.0f} | {ratio:.2f}x |")
    if "console_failover" not in seconds:
        return
    cost = seconds["console_failover"] / seconds["console"] - 1
    print(f"\nFailover with the first relay's circuit open costs {cost:+.1%} of the time (target: under +10%).")


def _table() -> None:
    table = _run_child("table", 0, ROWS)
    print(f"\n/messages/ first page with {ROWS:,} messages, median server time (view + template, 13 runs):\n")
    print("| filter | median ms |")
    print("|---|---:|")
    for query, ms in table.items():
        print(f"| `{query}` | {ms:.1f} |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2:])
    else:
        main()
