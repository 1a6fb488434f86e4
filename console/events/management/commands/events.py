"""``events verify``: check the log against its chain of seals; exits 1 naming the first tampered event."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.events.context import bound_user_id
from console.events.services import log_verify


class Command(BaseCommand):
    help = "Verify the sealed event log: name the first event changed, deleted or inserted since it was sealed."
    # Reads the log and records that it was checked, as the console's Verify button does.
    console_job_class = "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        sub.add_parser("verify", help="Recompute every seal over the log and its archives.")

    def handle(self, *args: Any, **options: Any) -> None:
        # Run as a job from the console, the check is the requesting user's: the job's launcher binds them.
        user_id = bound_user_id()
        actor = get_user_model()._default_manager.filter(pk=user_id).first() if user_id is not None else None
        result = log_verify(actor=actor)
        self.stdout.write(result.summary())
        for problem in result.problems:
            self.stdout.write(f"  {problem.kind}: {problem.text}")
        if result.more_problems:
            self.stdout.write("  (more problems not listed)")
        self.stdout.write(f"head {result.head} after {result.seals} seals, up to #{result.sealed_to or 0}")
        self.stdout.write(f"{result.checked} events in {result.seconds:.2f} s")
        if not result.ok:
            raise CommandError(result.problems[0].text)
