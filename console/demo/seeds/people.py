"""The demo's staff: an operator who may act, and a viewer who may only look."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

from console.demo.seeds import SeedOptions

ORDER = 0
CONSOLE_APPS = ["core", "events", "jobs", "eventsourcing", "comms", "demo"]


def seed(options: SeedOptions) -> str:
    operators, _ = Group.objects.get_or_create(name="Console operators")
    operators.permissions.set(Permission.objects.filter(content_type__app_label__in=CONSOLE_APPS))
    created = 0
    users = get_user_model()
    for username, groups in (("ops", [operators]), ("viewer", [])):
        user, was_created = users._default_manager.get_or_create(
            **{users.USERNAME_FIELD: username}, defaults={"email": f"{username}@example.com", "is_staff": True}
        )
        if was_created:
            user.set_unusable_password()
            user.save()
            created += 1
        user.groups.set(groups)
    return (
        f"{created} staff user(s) created, group 'Console operators' holds {operators.permissions.count()} permissions"
    )
