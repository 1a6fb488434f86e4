"""The runner's child: ``manage.py console_job <run id> <command>`` runs that job's command in this process.

The real arguments, secrets included, come from the database (the secrets unsealed here), so they never
appear on a command line that ``ps`` or ``/proc/<pid>/cmdline`` would show. The command then runs exactly as
``manage.py <command> <argv>`` would: its own parser, its own output, its own exit code; the events it emits
name the user who asked for the run, and the run.
"""

from __future__ import annotations

import sys
from typing import Any

import structlog
from django.core.management import execute_from_command_line
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.jobs.models import LIVE, JobRun
from console.jobs.vault import Unsealable


class Command(BaseCommand):
    help = "Run a queued job's command in this process (the job runner starts this; never run it by hand)."
    # The command it runs does its own checks, once.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run_id", type=int, help="The job run.")
        parser.add_argument("command", help="The run's command, which must match the run.")

    def handle(self, *args: Any, run_id: int, command: str, **options: Any) -> None:
        run = JobRun.objects.filter(pk=run_id, command=command, status__in=LIVE).first()
        if run is None:
            raise CommandError(f"No running job #{run_id} of {command}.")
        try:
            argv = run.real_argv()
        except Unsealable as exc:
            raise CommandError(str(exc)) from exc
        structlog.contextvars.bind_contextvars(user_id=run.requested_by_id, job_run_id=run.pk)
        execute_from_command_line([sys.argv[0], command, *argv])
