"""Standard-library records and structlog events come out once each, through the same renderer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import logging, django, os
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "console.settings")
django.setup()
import structlog
logging.getLogger("django").warning("disk nearly full", extra={"volume": "/var", "free_pct": 3})
structlog.get_logger("console.test").warning("queue.slow", depth=12)
try:
    1 / 0
except ZeroDivisionError:
    logging.getLogger("django.request").exception("boom")
"""


def run(debug: str) -> list[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": debug,
        "SECRET_KEY": "x" * 40,
        "LOG_LEVEL": "INFO",
        "CONSOLE_VAR_DIR": "var",
    }
    result = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_stdlib_record_is_rendered_once_as_json_with_its_extra_fields() -> None:
    lines = run("0")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    disk = [r for r in records if r["event"] == "disk nearly full"]
    assert len(disk) == 1
    assert disk[0]["volume"] == "/var" and disk[0]["free_pct"] == 3
    assert disk[0]["logger"] == "django" and disk[0]["level"] == "warning"
    ours = [r for r in records if r["event"] == "queue.slow"]
    assert len(ours) == 1 and ours[0]["depth"] == 12
    boom = [r for r in records if r["event"] == "boom"]
    assert len(boom) == 1
    assert boom[0]["exception"].count("ZeroDivisionError") == 1
    # Every line is one JSON record: nothing printed twice or outside the renderer.
    assert len(records) == len(lines)


def test_debug_renders_the_same_records_for_people() -> None:
    lines = run("1")
    disk = [line for line in lines if "disk nearly full" in line]
    assert len(disk) == 1
    assert "volume=/var" in disk[0] and "free_pct=3" in disk[0]
    assert sum("ZeroDivisionError: division by zero" in line for line in lines) == 1


PLAIN_SITE = r"""
import io, logging, django
from django.core.management import call_command
django.setup()
call_command("migrate", verbosity=0)
from console.events import declare, emit
from console.events.models import Event

handler = logging.StreamHandler(stream := io.StringIO())
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s name_=%(name_)s n=%(n)s"))
logging.getLogger("console.events").addHandler(handler)
logging.getLogger("console.events").setLevel(logging.INFO)
SHIPPED = declare("test.shipped", description="A parcel left.", required={"name", "n"})
emit(SHIPPED, name="parcel", n=3)
print(Event.objects.filter(type="test.shipped").values_list("data", flat=True).get())
print(stream.getvalue().strip())
"""


def test_a_site_with_its_own_logging_stores_events_and_logs_them_as_plain_records(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "tests.core.plain_site_settings",
        "PLAIN_SITE_DB": str(tmp_path / "site.sqlite3"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    result = subprocess.run([sys.executable, "-c", PLAIN_SITE], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    stored, logged = result.stdout.strip().splitlines()
    assert stored == "{'name': 'parcel', 'n': 3}"
    # A field named like a LogRecord attribute travels with a trailing underscore instead of crashing the call.
    assert logged == "INFO console.events test.shipped name_=parcel n=3"
