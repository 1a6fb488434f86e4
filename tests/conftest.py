"""Personas, a real task worker and a real browser, shared by every test."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

# Playwright's sync API runs an event loop in the main thread; Django's ORM refuses to run there unless told.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

# The host-site tier needs a built wheel (make hostsite); the other tiers never collect it.
collect_ignore = [] if os.environ.get("HOST_SITE_WHEEL") else ["hostsite"]


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None) -> None:
    """Processes the tests start (a worker, job runs) open the test database, through the environment."""
    os.environ["CONSOLE_DATABASE_NAME"] = str(connection.settings_dict["NAME"])


def pytest_unconfigure(config: pytest.Config) -> None:
    # The run's metrics files die with it; its worker children shared them.
    shutil.rmtree(str(settings.CONSOLE_EVENTS["METRICS_DIR"]), ignore_errors=True)


PASSWORD = "correct horse battery staple"


def _user(username: str, *, staff: bool, superuser: bool = False, perms: tuple[str, ...] = ()) -> User:
    user = User.objects.create_user(
        username, f"{username}@example.com", PASSWORD, is_staff=staff, is_superuser=superuser
    )
    for perm in perms:
        app_label, codename = perm.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return user


@pytest.fixture
def staff(db: None) -> User:
    """Staff with no console permissions: may look, may not act."""
    return _user("staff", staff=True)


@pytest.fixture
def staff_with(db: None) -> Callable[..., User]:
    """Makes staff who hold exactly the given permissions ("app_label.codename"), a new user per call."""
    made = itertools.count(1)

    def make(*perms: str) -> User:
        return _user(f"staff-{next(made)}", staff=True, perms=perms)

    return make


@pytest.fixture
def operator(db: None) -> User:
    """Staff who holds every permission of the console's apps."""
    user = _user("operator", staff=True)
    apps = ["core", "events", "jobs", "eventsourcing", "comms", "demo"]
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=apps))
    return user


@pytest.fixture
def admin_user(db: None) -> User:
    return _user("admin", staff=True, superuser=True)


@pytest.fixture
def outsider(db: None) -> User:
    """An active, signed-in user who is not staff."""
    return _user("outsider", staff=False)


@pytest.fixture
def login(client: Client) -> Callable[[User], Client]:
    def _login(user: User) -> Client:
        client.force_login(user)
        return client

    return _login


@pytest.fixture
def htmx_headers() -> dict[str, str]:
    return {"HX-Request": "true"}


# --- a real worker ------------------------------------------------------------------------------------------


class Worker:
    """A ``run_huey`` consumer in a child process, on the test database and the test queue."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.log = Path("var") / f"test-worker-{os.getpid()}.log"

    def start(self) -> None:
        from console.core.processes import child_env, manage_argv

        self.log.parent.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            manage_argv("run_huey", "--flush-locks", "--workers", "2", "--worker-type", "thread", "--delay", "0.05"),
            env=child_env(LOG_LEVEL="WARNING"),
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
def worker(transactional_db: None) -> Iterator[Worker]:
    """A real Huey consumer; the test itself must use ``transactional_db`` so the worker sees its rows."""
    from console.core import backends

    if not backends.uses_huey():
        pytest.fail("the worker fixture needs the Huey backend")
    from huey.contrib.djhuey import HUEY

    HUEY.flush()
    process = Worker()
    process.start()
    yield process
    process.stop()
    HUEY.flush()


def wait_for(
    predicate: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- markup -------------------------------------------------------------------------------------------------
# Templates put one element on a line and long attribute lists one attribute on a line: tests assert the markup
# a browser reads, not the template's layout.


def tidy_tags(html: str) -> str:
    """``html`` with every tag on one line (``<a\n   href="x"\n>`` is ``<a href="x">``); text stays as it is."""
    return re.sub(r"<[^<>]*>", lambda tag: " ".join(tag.group(0).split()).replace(" >", ">"), html)


def squeezed(html: str) -> str:
    """``html`` as the browser lays it out: tidy tags, no whitespace between two tags, every other run one space."""
    return re.sub(r"> <", "><", " ".join(tidy_tags(html).split()))


# --- a real browser -----------------------------------------------------------------------------------------


def chromium_path() -> str:
    for candidate in (os.environ.get("CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and Path(candidate).exists():
            return candidate
    # Never skip: a browser test without a browser is a failure (make test installs one).
    pytest.fail("No Chromium found: set CHROMIUM or install Debian's chromium package (make browser does).")


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


# What a page may take to act and to show a change, for actions and for expect() alike: a loaded machine (CI
# runs every tier back to back) can take seconds longer than a quiet one to answer a debounced htmx request.
BROWSER_TIMEOUT_MS = 15_000


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=BROWSER_TIMEOUT_MS)

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def csp_violations() -> list[str]:
    """What Chromium reported to the console as blocked by the Content Security Policy, in any frame."""
    return []


@pytest.fixture
def page(browser: Any, live_server: Any, csp_violations: list[str]) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    page.on(
        "console",
        lambda message: csp_violations.append(message.text) if "Content Security Policy" in message.text else None,
    )
    yield page
    context.close()
    # Every browser test also proves that the pages it visited work under the site's policy.
    assert csp_violations == [], "\n".join(csp_violations)


def serious_accessibility_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now, one line each."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])} elements)"
        for violation in results.response["violations"]
        if violation.get("impact") in ("serious", "critical")
    ]


@pytest.fixture
def signed_in_page(page: Any, admin_user: User) -> Any:
    """A browser page signed in as a superuser through the real login form."""
    sign_in(page, admin_user)
    return page


def sign_in(page: Any, user: User) -> None:
    """Sign ``page`` in as ``user`` through the real login form."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(user.username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/")
