from __future__ import annotations

import hashlib
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

GREEN, YELLOW, RESET = "\x1b[32m", "\x1b[33m", "\x1b[0m"


class Command(BaseCommand):
    help = "Demo: import records in batches for about a minute, drawing progress bars with carriage returns."
    console_job_class = "changes-data"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batches", type=int, default=12, help="How many batches to import.")
        parser.add_argument("--seconds", type=float, default=60.0, help="How long the whole import takes.")
        parser.add_argument("--source", choices=["crm", "billing", "legacy"], default="crm", help="Where from.")
        parser.add_argument("--api-key", help="The source's API key; only its fingerprint is ever printed.")

    def handle(
        self, *args: Any, batches: int, seconds: float, source: str, api_key: str | None, **options: Any
    ) -> None:
        if batches < 1 or seconds < 0:
            self.stderr.write("--batches must be at least 1 and --seconds zero or more")
            raise SystemExit(2)
        pause = seconds / (batches * 10)
        if api_key:
            fingerprint = hashlib.sha256(api_key.encode()).hexdigest()[:12]
            self.stdout.write(f"Signing in to {source} with the API key whose SHA-256 starts {fingerprint}")
        self.stdout.write(f"Importing {batches} batches from {source}")
        for batch in range(1, batches + 1):
            for step in range(1, 11):
                bar = "#" * step + "." * (10 - step)
                # A terminal progress bar: redrawn in place, coloured, no newline until the batch is done.
                sys.stdout.write(f"\r{YELLOW}batch {batch}/{batches}{RESET} [{bar}] {step * 10}%")
                sys.stdout.flush()
                time.sleep(pause)
            sys.stdout.write(f"\r{GREEN}batch {batch}/{batches} imported{RESET} [##########] 100%\n")
            sys.stdout.flush()
            if batch % 4 == 0:
                self.stderr.write(f"warning: batch {batch} had 1 duplicate record, skipped")
        self.stdout.write(self.style.SUCCESS(f"Imported {batches * 100} records from {source}"))
