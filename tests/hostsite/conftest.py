"""The host-site tier: the wheel in fresh ``startproject`` sites, one per task backend.

Runs only when ``HOST_SITE_WHEEL`` names a built wheel (``make hostsite`` builds one): installing it into a
new virtual environment with plain pip takes the registry, which the unit tiers do not need.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostsite.site import PASSWORD, HostSite


@pytest.fixture(scope="session")
def host_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment holding the wheel and what it depends on, nothing of our dev tools."""
    import os

    wheel = os.environ["HOST_SITE_WHEEL"]
    venv = tmp_path_factory.mktemp("host-venv")
    base = str(os.environ.get("HOST_SITE_BASE_PYTHON") or getattr(sys, "_base_executable", sys.executable))
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, wheel], check=True)
    return python


@pytest.fixture(scope="module")
def inline_site(host_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostSite]:
    """Only the README's lines: Django's default task backend (ImmediateBackend) runs work inline."""
    site = HostSite(tmp_path_factory.mktemp("inline") / "site", host_python)
    site.create(worker=False)
    site.set_up()
    site.serve()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def worker_site(host_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostSite]:
    """The README's lines with django-tasks-db: its worker runs the jobs, console_tick the periodic duties."""
    pip = [str(host_python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "django-tasks-db"], check=True)
    site = HostSite(tmp_path_factory.mktemp("worker") / "site", host_python)
    site.create(worker=True)
    site.set_up()
    site.start("db_worker")
    site.start("console_tick", "--loop", "--every", "5")
    site.serve()
    yield site
    site.stop()


def signed_in(browser: Any, site: HostSite) -> Any:
    """A page signed in through the host site's own admin login, as its staff would."""
    context = browser.new_context(base_url=site.url)
    context.set_default_timeout(20_000)
    page = context.new_page()
    page.goto("/ops/")
    page.wait_for_url("**/admin/login/?next=/ops/")
    page.get_by_label("Username").fill("boss")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/ops/")
    return page
