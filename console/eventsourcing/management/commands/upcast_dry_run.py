"""Run the upcasters over the stored events of a type, report what fails, and write nothing."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.events.models import Event
from console.eventsourcing.domain import UnknownEventType, UpcastError, event_class, to_domain


class Command(BaseCommand):
    help = "Dry-run the upcasters of a domain event type over its stored events; nothing is written."
    console_job_class = "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("type", help="The domain event type, e.g. account.opened.")
        parser.add_argument("--limit", type=int, default=0, help="Check at most this many events (0: all).")
        parser.add_argument("--show", type=int, default=20, help="Print at most this many failures.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["type"]
        try:
            current = event_class(name).schema_version
        except UnknownEventType as exc:
            raise CommandError(str(exc)) from exc
        events = Event.objects.filter(type=name).order_by("position")
        if options["limit"] > 0:
            events = events[: options["limit"]]
        checked = upcast = 0
        failures: list[str] = []
        for event in events.iterator(chunk_size=2000):
            checked += 1
            try:
                to_domain(event)
            except UpcastError as exc:
                failures.append(f"#{event.position} v{event.schema_version}: {exc}")
                continue
            if event.schema_version != current:
                upcast += 1
        self.stdout.write(
            f"{name} (schema v{current}): {checked} checked, {upcast} upcast from older versions, "
            f"{len(failures)} failed"
        )
        for line in failures[: options["show"]]:
            self.stdout.write(f"  {line}")
        if failures:
            raise CommandError(f"{len(failures)} stored {name} event(s) cannot be upcast")
