from __future__ import annotations

import os
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create or update the staff superuser 'admin' and print how to sign in."

    def handle(self, *args: Any, **options: Any) -> None:
        password_file = settings.VAR_DIR / "admin_password"
        password = os.environ.get("CONSOLE_ADMIN_PASSWORD", "")
        if not password:
            if not password_file.exists():
                password_file.write_text(secrets.token_urlsafe(12))
                password_file.chmod(0o600)
            password = password_file.read_text().strip()
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()
        self.stdout.write(f"Staff login: admin / {password}")
