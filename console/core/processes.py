"""Starting child processes of this site (job runs, workers) that see what the parent sees.

A child is the site's own ``manage.py``: ``CONSOLE_CORE["MANAGE_PY"]`` when set, else the ``manage.py`` this
process was started by (``manage.py run_huey``, ``manage.py db_worker``, ``manage.py runserver``), else
``python -m django`` with this process's settings module (under gunicorn or uvicorn, say). The child inherits
this process's environment, so it opens the same database and queue.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from django.conf import ENVIRONMENT_VARIABLE, settings
from django.core.exceptions import ImproperlyConfigured

from console.core.conf import core_settings


def manage_prefix() -> list[str]:
    """argv that starts this site's ``manage.py`` with this interpreter, unbuffered; never a shell string."""
    configured = core_settings().manage_py
    if configured:
        return [sys.executable, "-u", configured]
    started_by = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if started_by is not None and started_by.name == "manage.py" and started_by.is_file():
        return [sys.executable, "-u", str(started_by.resolve())]
    return [sys.executable, "-u", "-m", "django"]


def manage_argv(command: str, *args: str) -> list[str]:
    """argv for ``manage.py <command> <args>``."""
    return [*manage_prefix(), command, *args]


def settings_module() -> str:
    # The module this process was started with (overridden settings report none), or one a caller put there.
    module = os.environ.get(ENVIRONMENT_VARIABLE) or settings.SETTINGS_MODULE
    if not module:
        raise ImproperlyConfigured("Child processes need a settings module: set DJANGO_SETTINGS_MODULE.")
    return module


def settings_root() -> str | None:
    """The directory the settings module's top package was imported from, so ``-m django`` finds it too."""
    top = settings_module().partition(".")[0]
    spec = importlib.util.find_spec(top)
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    # A package's origin is its __init__.py; a top-level module's is the file itself.
    return str(origin.parent.parent if origin.name == "__init__.py" else origin.parent)


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child ``manage.py``: this one, with the same settings module and unbuffered output."""
    env = dict(os.environ)
    env[ENVIRONMENT_VARIABLE] = settings_module()
    env["PYTHONUNBUFFERED"] = "1"
    root = settings_root()
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    env.update(extra)
    return env
