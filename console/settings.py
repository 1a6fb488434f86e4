"""Settings for the standalone console site, driven by the environment.

This site is one host of the console's apps among others: the demo and the development environment. A host
site needs none of this file; see the README's "Add the console to your site". Every value comes from an
environment variable read through a typed helper that stops start-up with one clear line naming the variable
when its value is malformed. The test suite's settings (``tests/settings.py``) build on these.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("CONSOLE_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off")


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} is below {minimum}")
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = os.environ.get(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} is not one of: {', '.join(choices)}")
    return value


def env_url(name: str, schemes: tuple[str, ...]) -> str | None:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    parsed = urlparse(raw)
    if parsed.scheme not in schemes:
        raise ImproperlyConfigured(f"{name} must be a URL with scheme {' or '.join(schemes)}, not {raw!r}")
    return raw


DEBUG = env_bool("DEBUG", False)

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set when DEBUG is off (for example SECRET_KEY=$(openssl rand -hex 32))"
        )
    # A development key kept under var/ so sessions survive restarts of `make run`.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        _key_file.write_text(secrets.token_hex(32))
    SECRET_KEY = _key_file.read_text().strip()

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "django_structlog",
    "huey.contrib.djhuey",
    "console.core",
    "console.events",
    "console.jobs",
    "console.eventsourcing",
    "console.comms",
    "console.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "console.core.middleware.RequestIdHeaderMiddleware",
]

ROOT_URLCONF = "console.site_urls"
WSGI_APPLICATION = "console.wsgi.application"
ASGI_APPLICATION = "console.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.csp",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "console.core.context_processors.console",
            ],
        },
    }
]

# --- Database -----------------------------------------------------------------------------------------
DATABASE_URL = env_url("DATABASE_URL", ("sqlite", "postgres", "postgresql"))
if DATABASE_URL:
    try:
        _db: dict[str, Any] = dict(dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True))
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a database URL: {exc}") from exc
else:
    _db = {"ENGINE": "django.db.backends.sqlite3", "NAME": VAR_DIR / "console.sqlite3"}

if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE takes the write lock at BEGIN so
    # two writers queue on the busy timeout instead of failing with "database is locked" mid-transaction.
    # Checkpointing every 10,000 WAL pages instead of 1,000 copies each hot page (the log's right edge,
    # touched by every append) back far less often; the WAL is cut back to 64 MiB after a checkpoint, and a
    # 20 MiB page cache keeps the indexes appends walk in memory.
    _db["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": (
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA wal_autocheckpoint=10000;"
            " PRAGMA journal_size_limit=67108864; PRAGMA cache_size=-20000;"
        ),
    }
    _db["CONN_MAX_AGE"] = 0
# Child processes of a test run (job runs, test workers) open the test database their parent created.
if os.environ.get("CONSOLE_DATABASE_NAME"):
    _db["NAME"] = os.environ["CONSOLE_DATABASE_NAME"]
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Tasks ----------------------------------------------------------------------------------------------
CONSOLE_TASKS = env_choice("CONSOLE_TASKS", ("huey", "immediate"), "huey")
REDIS_URL = env_url("REDIS_URL", ("redis", "rediss", "unix"))
HUEY_NAME = os.environ.get("CONSOLE_HUEY_NAME", "console")
HUEY: dict[str, Any]
if REDIS_URL:
    HUEY = {"huey_class": "huey.RedisHuey", "name": HUEY_NAME, "url": REDIS_URL}
else:
    HUEY = {
        "huey_class": "huey.SqliteHuey",
        "name": HUEY_NAME,
        "filename": str(VAR_DIR / (f"huey-{HUEY_NAME}.sqlite3")),
    }
# djhuey runs tasks inline whenever DEBUG is on unless told otherwise; inline is only ever asked for here.
HUEY.update({"immediate": False, "utc": True, "consumer": {"workers": 2, "worker_type": "thread"}})

if CONSOLE_TASKS == "immediate":
    TASKS = {"default": {"BACKEND": "django.tasks.backends.immediate.ImmediateBackend"}}
else:
    TASKS = {"default": {"BACKEND": "huey.contrib.djhuey.tasks_backend.HueyBackend"}}

# --- The console's apps ------------------------------------------------------------------------------------
# Web and worker processes count metrics into one directory, kept with the site's other state.
CONSOLE_EVENTS: dict[str, object] = {
    "METRICS_DIR": str(VAR_DIR / "prometheus"),
    "ARCHIVE_DIR": str(VAR_DIR / "archive"),
}
CONSOLE_JOBS: dict[str, object] = {"WARM_START": env_bool("CONSOLE_JOBS_WARM_START", True)}

# --- Auth, i18n, static ----------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "core:dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# In development whitenoise serves straight from the apps' static folders.
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# --- HTTPS and cookies --------------------------------------------------------------------------------
# Behind a proxy that terminates TLS, only the proxy's X-Forwarded-Proto tells Django a request came over
# HTTPS (the proxy must set it and drop the client's own); without it, the SSL redirect would loop and the
# CSRF check would refuse every form.
BEHIND_TLS_PROXY = env_bool("CONSOLE_BEHIND_TLS_PROXY", False)
SERVES_TLS = env_bool("CONSOLE_SERVES_TLS", False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = BEHIND_TLS_PROXY or SERVES_TLS
# Load balancers probe the web processes directly over plain HTTP; a redirect would read as "down".
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Development serves plain HTTP, where a Secure cookie would never come back.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False

# Browsers keep HSTS only from HTTPS answers, so it costs nothing over plain HTTP. Subdomains and preloading
# are promises about every other site on the domain, so they stay off unless asked for; Django's deploy
# checks W005 and W021 only say that they are off.
SECURE_HSTS_SECONDS = env_int("CONSOLE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("CONSOLE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("CONSOLE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = ["security.W005", "security.W021"]

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Content Security Policy ------------------------------------------------------------------------------
# Scripts and styles come from this site's static files, or inline with the request's nonce; nothing is
# evaluated (htmx is configured to need no eval, see console/base.html). HTML message bodies are framed from
# this site under a stricter policy of their own. Development only reports violations, so that Django's debug
# pages keep their inline scripts and styles while the browser's console still shows what would break.
_CSP: dict[str, list[str]] = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}
SECURE_CSP: dict[str, list[str]] = {} if DEBUG else _CSP
SECURE_CSP_REPORT_ONLY: dict[str, list[str]] = _CSP if DEBUG else {}

# Development prints mail; a deployment sends it to the machine's own mail relay unless told otherwise.
_MAIL_BACKEND = "console" if DEBUG else "smtp"
MAILERS = {
    "default": {
        "BACKEND": os.environ.get("CONSOLE_MAIL_BACKEND", f"django.core.mail.backends.{_MAIL_BACKEND}.EmailBackend")
    },
}
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "console@localhost")
# Plain addresses: Django 6 deprecates (name, address) pairs.
ADMINS = env_list("CONSOLE_ADMINS", [])

# --- Logging: structlog renders every record, ours and the standard library's -----------------------------
from console.core.logconfig import configure_logging  # noqa: E402

LOGGING_CONFIG = None
configure_logging(debug=DEBUG, level=os.environ.get("LOG_LEVEL", "INFO"))
DJANGO_STRUCTLOG_CELERY_ENABLED = False
