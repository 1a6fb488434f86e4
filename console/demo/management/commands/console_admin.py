from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Create or update the demo's staff superuser 'admin' and print how to sign in."
    # It resets the staff superuser's password (and is on the deny list anyway).
    console_job_class = "destructive"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password-file",
            type=Path,
            required=True,
            help="Where the generated password is kept, so it stays the same from one run to the next.",
        )

    def handle(self, *args: Any, password_file: Path, **options: Any) -> None:
        password = os.environ.get("CONSOLE_ADMIN_PASSWORD", "")
        if not password:
            if not password_file.exists():
                password_file.write_text(secrets.token_urlsafe(12))
                password_file.chmod(0o600)
            password = password_file.read_text().strip()
        users = get_user_model()
        user, _ = users._default_manager.get_or_create(
            **{users.USERNAME_FIELD: "admin"}, defaults={"email": "admin@localhost"}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"Staff login: admin / {password}")
