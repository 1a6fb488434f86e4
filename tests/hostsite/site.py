"""A fresh ``django-admin startproject`` site with the built wheel, set up as the README tells a new user.

The site has its own user model (as real sites do), then gets exactly the code blocks of README.md marked
``<!-- host-site: FILE -->``: what the README says is what this tier runs.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
PASSWORD = "host-site-password-1"

USER_MODEL = '''from django.contrib.auth.models import AbstractUser


class User(AbstractUser):
    """The site's own user model: the console must not assume auth.User."""
'''


def readme_blocks(marker: str) -> str:
    """The README's code block right after ``<!-- host-site: {marker} -->``."""
    pattern = rf"<!-- host-site: {re.escape(marker)} -->\n```python\n(.*?)```"
    found = re.search(pattern, README.read_text(), flags=re.DOTALL)
    if found is None:
        raise AssertionError(f"README.md has no code block marked 'host-site: {marker}'")
    return found.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class HostSite:
    root: Path
    python: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    url: str = ""

    @property
    def env(self) -> dict[str, str]:
        # Nothing of this repository's own environment: the site knows only itself.
        return {"PATH": f"{self.python.parent}:/usr/bin:/bin", "HOME": str(self.root), "LANG": "C.UTF-8"}

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.python), "manage.py", *args],
            cwd=self.root,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def create(self, *, worker: bool) -> None:
        self.root.mkdir(parents=True)
        made = subprocess.run(
            [str(self.python), "-m", "django", "startproject", "hostsite", str(self.root)],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert made.returncode == 0, made.stderr
        assert self.manage("startapp", "accounts").returncode == 0
        (self.root / "accounts" / "models.py").write_text(USER_MODEL)
        settings = self.root / "hostsite" / "settings.py"
        blocks = [
            'INSTALLED_APPS += ["accounts"]\nAUTH_USER_MODEL = "accounts.User"\n',
            readme_blocks("settings.py"),
        ]
        if worker:
            blocks.append(readme_blocks("settings.py, with a worker"))
        settings.write_text(settings.read_text() + "\n" + "\n".join(blocks))
        urls = self.root / "hostsite" / "urls.py"
        urls.write_text(urls.read_text() + "\n" + readme_blocks("urls.py"))
        assert self.manage("makemigrations", "accounts").returncode == 0

    def set_up(self) -> None:
        migrated = self.manage("migrate", "--no-input")
        assert migrated.returncode == 0, migrated.stderr
        admin = self.manage(
            "createsuperuser",
            "--no-input",
            "--username",
            "boss",
            "--email",
            "boss@example.com",
            DJANGO_SUPERUSER_PASSWORD=PASSWORD,
        )
        assert admin.returncode == 0, admin.stderr

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{args[0]}.log").open("wb")
        process = subprocess.Popen(
            [str(self.python), "manage.py", *args],
            cwd=self.root,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(process)
        return process

    def serve(self) -> None:
        port = free_port()
        self.start("runserver", f"127.0.0.1:{port}", "--noreload")
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/admin/login/", timeout=2):
                    return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"the host site did not start: {self.log('runserver')}")

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
