"""The worker's warm runner: ``manage.py console_warm_runner <fd>`` forks job runs on request (see jobs/warm.py).

A worker starts it with one end of a unix socket pair as ``<fd>``; it is never run by hand.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from console.jobs.warm import serve


class Command(BaseCommand):
    help = "Keep Django loaded and fork job runs on request (a job worker starts this; never run it by hand)."
    # The warm runner runs the checks itself, once, so that each forked run's own checks find them warm.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("control_fd", type=int, help="The worker's end of the control socket.")

    def handle(self, *args: Any, control_fd: int, **options: Any) -> None:
        serve(control_fd)
