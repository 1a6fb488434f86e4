"""Bad environment values stop start-up with one clear line naming the variable."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    # The standalone site's own settings, as a fresh shell would start them (not the test suite's).
    dropped = {"DATABASE_URL", "REDIS_URL", "DEBUG", "SECRET_KEY", "DJANGO_SETTINGS_MODULE", "CONSOLE_MAIL_BACKEND"}
    dropped |= {"CONSOLE_BEHIND_TLS_PROXY", "CONSOLE_SERVES_TLS", "CONSOLE_HSTS_SECONDS"}
    dropped |= {"CONSOLE_HSTS_INCLUDE_SUBDOMAINS", "CONSOLE_HSTS_PRELOAD", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    # The test database's name: without the URL beside it, a child would open a SQLite file of that name.
    dropped.add("CONSOLE_DATABASE_NAME")
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def run_check(**env: str) -> subprocess.CompletedProcess[str]:
    return run_manage("check", **env)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"DEBUG": "maybe"}, "DEBUG"),
        ({"DEBUG": "1", "DATABASE_URL": "mysqlx://nowhere"}, "DATABASE_URL"),
        ({"DEBUG": "1", "REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"DEBUG": "1", "CONSOLE_TASKS": "celery"}, "CONSOLE_TASKS"),
        ({"DEBUG": "0"}, "SECRET_KEY"),
        ({"DEBUG": "1", "CONSOLE_HSTS_SECONDS": "a year"}, "CONSOLE_HSTS_SECONDS"),
        ({"DEBUG": "1", "CONSOLE_HSTS_SECONDS": "-1"}, "CONSOLE_HSTS_SECONDS"),
        ({"DEBUG": "1", "CONSOLE_BEHIND_TLS_PROXY": "maybe"}, "CONSOLE_BEHIND_TLS_PROXY"),
    ],
)
def test_it_names_the_bad_variable(env: dict[str, str], variable: str) -> None:
    result = run_check(**env)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert variable in lines[0]
    assert "Traceback" not in result.stderr


def test_it_starts_with_good_values() -> None:
    result = run_check(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.com")
    assert result.returncode == 0, result.stderr


# The README's production environment: DEBUG off, a secret key, the host name, and where TLS ends.
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(40)[:50], "ALLOWED_HOSTS": "example.com"}


def test_the_documented_production_environment_passes_the_deploy_checks_without_a_warning() -> None:
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION, CONSOLE_BEHIND_TLS_PROXY="1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_the_deploy_checks_ask_where_tls_ends_when_nobody_said() -> None:
    result = run_manage("check", "--deploy", **PRODUCTION)
    assert "security.W008" in result.stderr
    assert "security.W012" not in result.stderr and "security.W004" not in result.stderr


def settings_under(**env: str) -> dict[str, Any]:
    names = [
        "SECURE_PROXY_SSL_HEADER",
        "SECURE_SSL_REDIRECT",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "CSRF_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_HSTS_PRELOAD",
        "SECURE_CSP",
        "SECURE_CSP_REPORT_ONLY",
    ]
    code = (
        f"import json; from django.conf import settings as s; print(json.dumps({{n: getattr(s, n) for n in {names}}}))"
    )
    result = run_manage("shell", "--no-imports", "-c", code, **env)
    assert result.returncode == 0, result.stderr
    values: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def test_behind_a_tls_proxy_it_trusts_the_proxy_header_and_redirects_to_https() -> None:
    values = settings_under(**PRODUCTION, CONSOLE_BEHIND_TLS_PROXY="1")
    assert values.pop("SECURE_CSP")["script-src"] == ["'self'", "<CSP_NONCE_SENTINEL>"]
    assert values.pop("SECURE_CSP_REPORT_ONLY") == {}
    assert values == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "SESSION_COOKIE_HTTPONLY": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": False,
        "SECURE_HSTS_PRELOAD": False,
    }


def test_serving_tls_itself_it_redirects_but_trusts_no_proxy_header() -> None:
    values = settings_under(**PRODUCTION, CONSOLE_SERVES_TLS="1", CONSOLE_HSTS_INCLUDE_SUBDOMAINS="1")
    assert values["SECURE_PROXY_SSL_HEADER"] is None and values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True


def test_development_keeps_plain_http_working() -> None:
    values = settings_under(DEBUG="1")
    assert values["SESSION_COOKIE_SECURE"] is False and values["CSRF_COOKIE_SECURE"] is False
    assert values["SECURE_HSTS_SECONDS"] == 0 and values["SECURE_SSL_REDIRECT"] is False
    # Django's debug pages use inline scripts: development reports what the policy would block.
    assert values["SECURE_CSP"] == {} and values["SECURE_CSP_REPORT_ONLY"]["style-src"] == [
        "'self'",
        "<CSP_NONCE_SENTINEL>",
    ]


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's own settings")
def test_sqlite_connections_are_tuned_for_a_writer_beside_readers(db: None) -> None:
    with connection.cursor() as cursor:
        answers = {}
        for pragma in ("journal_mode", "synchronous", "wal_autocheckpoint", "cache_size"):
            cursor.execute(f"PRAGMA {pragma}")
            answers[pragma] = cursor.fetchone()[0]
    assert answers == {"journal_mode": "wal", "synchronous": 1, "wal_autocheckpoint": 10000, "cache_size": -20000}


def test_console_pages_carry_the_policy_with_a_fresh_nonce_for_their_scripts(client: Client, staff: User) -> None:
    client.force_login(staff)
    first, second = client.get("/"), client.get("/")
    policy = dict(directive.strip().split(" ", 1) for directive in first["Content-Security-Policy"].split(";"))
    nonce = re.fullmatch(r"'self' 'nonce-([^']+)'", policy["script-src"])
    assert nonce is not None, policy
    assert policy["style-src"] == policy["script-src"] and policy["default-src"] == "'self'"
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == "'none'"
    page = first.content.decode()
    assert page.count(f'nonce="{nonce.group(1)}"') == page.count("<script") == 2
    assert nonce.group(1) not in second["Content-Security-Policy"]


def test_no_template_relies_on_inline_code_or_style_attributes() -> None:
    base = Path(settings.BASE_DIR)
    templates = [*(base / "console").rglob("templates/**/*.html"), *(base / "templates").rglob("*.html")]
    assert len(templates) > 20
    for path in templates:
        if path.parent.parent.name == "comms":
            continue  # a message class's templates (comms/<class>/body.html) are mail, framed under their own policy
        text = path.read_text()
        assert not re.search(r"\sstyle=|\son[a-z]+=|hx-on|javascript:", text), path
        assert not re.search(r"<(script|style)(?![^>]*nonce=)[^>]*>", text), path
