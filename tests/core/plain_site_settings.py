"""A site that knows nothing of structlog: only Django's defaults and the console's apps."""

from __future__ import annotations

import os

SECRET_KEY = "plain-site-" + "k" * 40
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_htmx",
    "django_tables2",
    "django_filters",
    "console.core",
    "console.events",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["PLAIN_SITE_DB"]}}
USE_TZ = True
