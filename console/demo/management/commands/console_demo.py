from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from console.demo import seeds
from console.demo.seeds import SeedOptions


class Command(BaseCommand):
    help = "Seed the demo domain (idempotent): staff, jobs, events, event-sourced accounts and messages."
    console_job_class = "changes-data"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--events", type=int, default=2000, help="How many audit events the log should hold at least."
        )
        parser.add_argument("--messages", type=int, default=200, help="How many demo messages should exist at least.")

    def handle(self, *args: Any, events: int, messages: int, verbosity: int, **options: Any) -> None:
        if events < 0 or messages < 0:
            self.stderr.write("--events and --messages must be zero or more")
            raise SystemExit(2)
        modules = [
            importlib.import_module(f"{seeds.__name__}.{info.name}") for info in pkgutil.iter_modules(seeds.__path__)
        ]
        options_ = SeedOptions(events=events, messages=messages, verbosity=verbosity)
        for module in sorted(modules, key=lambda m: (m.ORDER, m.__name__)):
            summary = module.seed(options_)
            self.stdout.write(f"{module.__name__.rsplit('.', 1)[-1]}: {summary}")
