"""The test suite's settings: the standalone site's, with what a test run needs on top.

Names that must be the same in the test process and in the processes it starts (a worker, job runs) are
put in the environment before the site's settings read them, so children inherit them.
"""

from __future__ import annotations

import os

# One test run's own queue, database and metrics, whatever else runs on the machine.
RUN = os.environ.setdefault("CONSOLE_TEST_RUN", str(os.getpid()))
os.environ.setdefault("SECRET_KEY", f"test-run-{RUN}-" + "k" * 40)
os.environ.setdefault("CONSOLE_HUEY_NAME", f"console-test-{RUN}")
os.environ.setdefault("LOG_LEVEL", "WARNING")
# Processes the tests start send no real mail unless a test points them at its own SMTP server.
os.environ.setdefault("CONSOLE_MAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

from console.settings import *  # noqa: E402, F403
from console.settings import DATABASES, INSTALLED_APPS, VAR_DIR  # noqa: E402

# A test dependency: its commands prove the job form generator covers real-world parsers.
INSTALLED_APPS = [*INSTALLED_APPS, "django_extensions"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost", "[::1]"]

# A file, not memory, on SQLite: job children and the test worker open the same database.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-{RUN}.sqlite3")}
else:
    # Concurrent test runs on one server must not share a test database.
    DATABASES["default"]["TEST"] = {"NAME": f"test_console_{RUN}"}

# Declaration mismatches fail the test that emits them.
CONSOLE_EVENTS = {"STRICT": True, "METRICS_DIR": str(VAR_DIR / f"prometheus-test-{RUN}")}

# Pages are served from the apps' static folders, with no manifest to build first.
WHITENOISE_USE_FINDERS = WHITENOISE_AUTOREFRESH = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
