from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class ReconciliationError(RuntimeError):
    pass


def _reconcile(ledger: str) -> None:
    raise ReconciliationError(f"ledger {ledger!r} is out of balance by 42.00")


class Command(BaseCommand):
    help = "Demo: start a reconciliation and fail with a traceback (or, with --ask, wait for an answer on stdin)."
    console_job_class = "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--ledger", default="main", help="Which ledger to reconcile.")
        parser.add_argument("--ask", action="store_true", help="Ask for confirmation on stdin first.")

    def handle(self, *args: Any, ledger: str, ask: bool, **options: Any) -> None:
        self.stdout.write(f"Reconciling ledger {ledger}…")
        if ask:
            answer = input("Really reconcile? [y/N] ")
            self.stdout.write(f"answer: {answer}")
        _reconcile(ledger)
