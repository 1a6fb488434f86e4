from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Demo: print N short numbered lines as fast as possible (how fast can output be captured?)."
    console_job_class = "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--lines", type=int, default=100_000, help="How many lines to print.")

    def handle(self, *args: Any, lines: int, **options: Any) -> None:
        out = sys.stdout
        step = 10_000
        for start in range(0, lines, step):
            out.write("".join(f"line {n}\n" for n in range(start, min(start + step, lines))))
        out.flush()
