"""What a command can do, and so which permissions running it (and reading its output) needs.

Every command is in one class: read-only, exposes data, changes data, destructive, or "console", a command
that stands for a console page and needs that page's permission. ``jobs.run_command`` is needed for all of
them; each class above read-only needs its own permission besides. A destructive command can change and
show anything, so it needs the data-changing and data-exposing permissions as well as its own.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, PermissionsMixin

RUN = "jobs.run_command"
EXPOSE = "jobs.run_exposing_command"
CHANGE = "jobs.run_changing_command"
DESTROY = "jobs.run_destructive_command"
VIEW_ALL = "jobs.view_all_runs"
# Creating, changing, pausing and resuming schedules; what a schedule runs needs that command's class too.
SCHEDULE = "jobs.change_schedule"
APPROVE = "jobs.approve_run"


class JobClass(models.TextChoices):
    READ_ONLY = "read-only", "read-only"
    EXPOSES_DATA = "exposes-data", "exposes data"
    CHANGES_DATA = "changes-data", "changes data"
    DESTRUCTIVE = "destructive", "destructive"
    CONSOLE = "console", "console page"


CLASS_PERMISSIONS: dict[str, tuple[str, ...]] = {
    JobClass.READ_ONLY: (),
    JobClass.EXPOSES_DATA: (EXPOSE,),
    JobClass.CHANGES_DATA: (CHANGE,),
    JobClass.DESTRUCTIVE: (EXPOSE, CHANGE, DESTROY),
}
# The class of a command nobody classed: it may well write, so it needs more than the base permission.
UNKNOWN = JobClass.CHANGES_DATA


@dataclass(frozen=True)
class Access:
    """A command's class, with the page permission when the class is "console"."""

    job_class: JobClass
    permission: str = ""

    @classmethod
    def parse(cls, value: object) -> Access | None:
        """A class name ("read-only", ...) or a permission ("app_label.codename"); None for anything else."""
        if not isinstance(value, str):
            return None
        if value in JobClass.values and value != JobClass.CONSOLE:
            return cls(JobClass(value))
        app_label, dot, codename = value.partition(".")
        if dot and app_label and codename and "." not in codename:
            return cls(JobClass.CONSOLE, value)
        return None

    @property
    def permissions(self) -> tuple[str, ...]:
        """Every permission needed, the base one first."""
        if self.job_class == JobClass.CONSOLE:
            return (RUN, self.permission)
        return (RUN, *CLASS_PERMISSIONS[self.job_class])

    def missing(self, user: PermissionsMixin | AnonymousUser) -> list[str]:
        return [perm for perm in self.permissions if not user.has_perm(perm)]

    @property
    def destructive(self) -> bool:
        return self.job_class == JobClass.DESTRUCTIVE

    @property
    def label(self) -> str:
        if self.job_class == JobClass.CONSOLE:
            return f"needs {self.permission}"
        return str(self.job_class.label)


def lacking(missing: list[str]) -> str:
    """``missing`` permissions in words, for a refusal."""
    return f"lacks the {' and '.join(missing)} permission{'s' if len(missing) > 1 else ''}"


def classes_seen_by(held: set[str]) -> list[str]:
    """The classes (other than "console") whose runs a holder of ``held`` may run, and so may read."""
    if RUN not in held:
        return []
    return [job_class for job_class, perms in CLASS_PERMISSIONS.items() if set(perms) <= held]


# --- the built-in table: Django's and django-extensions' commands ----------------------------------------------

BUILT_IN: dict[str, JobClass] = {
    # Django
    "check": JobClass.READ_ONLY,
    "showmigrations": JobClass.READ_ONLY,
    "sqlmigrate": JobClass.READ_ONLY,
    "sqlsequencereset": JobClass.READ_ONLY,  # prints SQL, runs none
    "findstatic": JobClass.READ_ONLY,
    "diffsettings": JobClass.EXPOSES_DATA,  # SECRET_KEY, database passwords
    "dumpdata": JobClass.EXPOSES_DATA,  # every row, session keys included
    "inspectdb": JobClass.EXPOSES_DATA,  # the whole schema, tables outside Django's too
    "sendtestemail": JobClass.EXPOSES_DATA,  # mails anyone from the site's own address
    "clearsessions": JobClass.CHANGES_DATA,  # expired sessions only
    "createcachetable": JobClass.CHANGES_DATA,  # creates missing tables, drops none
    "create_huey_tables": JobClass.CHANGES_DATA,
    "collectstatic": JobClass.CHANGES_DATA,
    "compilemessages": JobClass.CHANGES_DATA,
    "migrate": JobClass.DESTRUCTIVE,  # can unapply migrations, dropping tables
    "loaddata": JobClass.DESTRUCTIVE,  # overwrites rows by primary key
    "remove_stale_contenttypes": JobClass.DESTRUCTIVE,  # cascades to permissions and generic relations
    # django-extensions
    "admin_generator": JobClass.READ_ONLY,
    "describe_form": JobClass.READ_ONLY,
    "find_template": JobClass.READ_ONLY,
    "generate_password": JobClass.READ_ONLY,
    "generate_secret_key": JobClass.READ_ONLY,  # a new random key, not the site's
    "graph_models": JobClass.READ_ONLY,
    "list_model_info": JobClass.READ_ONLY,
    "list_signals": JobClass.READ_ONLY,
    "raise_test_exception": JobClass.READ_ONLY,
    "show_permissions": JobClass.READ_ONLY,
    "show_template_tags": JobClass.READ_ONLY,
    "show_urls": JobClass.READ_ONLY,
    "sqldiff": JobClass.READ_ONLY,
    "validate_templates": JobClass.READ_ONLY,
    "dumpscript": JobClass.EXPOSES_DATA,
    "export_emails": JobClass.EXPOSES_DATA,
    "print_settings": JobClass.EXPOSES_DATA,
    "print_user_for_session": JobClass.EXPOSES_DATA,
    "sqlcreate": JobClass.EXPOSES_DATA,  # prints the database password
    "unreferenced_files": JobClass.EXPOSES_DATA,  # names of uploaded files
    "clean_pyc": JobClass.CHANGES_DATA,
    "clear_cache": JobClass.CHANGES_DATA,
    "compile_pyc": JobClass.CHANGES_DATA,
    "set_default_site": JobClass.CHANGES_DATA,
    "update_permissions": JobClass.CHANGES_DATA,
    "managestate": JobClass.DESTRUCTIVE,  # "load" migrates
    "merge_model_instances": JobClass.DESTRUCTIVE,
    "runscript": JobClass.DESTRUCTIVE,  # runs whatever the script does
    "syncdata": JobClass.DESTRUCTIVE,  # deletes rows missing from the fixtures
}


def _destructive_with(option: str) -> Callable[[dict[str, Any]], JobClass | None]:
    def judge(options: dict[str, Any]) -> JobClass | None:
        return JobClass.DESTRUCTIVE if options.get(option) else None

    return judge


# Options that make a built-in command more dangerous than its name says: emptying the static root, and
# writing to a path the user chooses, which can overwrite the site's own code.
BY_OPTIONS: dict[str, Callable[[dict[str, Any]], JobClass | None]] = {
    "collectstatic": _destructive_with("clear"),
    "dumpdata": _destructive_with("output"),
    "graph_models": _destructive_with("outputfile"),
}
