from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from console.core.tick import run_tick


class Command(BaseCommand):
    help = "Run every app's periodic duties once, or forever with --loop (for task backends without a scheduler)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--loop", action="store_true", help="Keep running the tick until interrupted.")
        parser.add_argument(
            "--every", type=float, default=30.0, metavar="SECONDS", help="Seconds between ticks with --loop."
        )

    def handle(self, *args: Any, loop: bool, every: float, **options: Any) -> None:
        if every <= 0:
            self.stderr.write("--every must be a positive number of seconds")
            raise SystemExit(2)
        while True:
            for name, outcome in run_tick().items():
                self.stdout.write(f"{name}: {outcome}")
            if not loop:
                return
            try:
                time.sleep(every)
            except KeyboardInterrupt:
                return
