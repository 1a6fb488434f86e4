"""``projections status`` and ``projections rebuild <name> [--as-of TIME | --position N]``."""

from __future__ import annotations

from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from console.events.context import bound_user_id
from console.eventsourcing import projections
from console.eventsourcing.models import MANAGE_PROJECTION, RebuildRun
from console.eventsourcing.replay import run_rebuild
from console.eventsourcing.services import RebuildError, parse_as_of, rebuild_start


class Command(BaseCommand):
    help = "Show the projections' position and lag, or rebuild one (now, or as of a past position or time)."
    # As a job: "status" shows what the projections page shows every staff user; "rebuild" needs what the
    # page's rebuild button needs.
    console_job_class = "read-only"

    def console_job_class_for(self, options: dict[str, Any]) -> str:
        return MANAGE_PROJECTION if options.get("action") == "rebuild" else "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, parser_class=CommandParser)
        sub.add_parser("status", help="Mode, position, lag, status and last error of every projection.")
        rebuild: ArgumentParser = sub.add_parser("rebuild", help="Rebuild one projection from the log.")
        rebuild.add_argument("name", help="The projection's name, e.g. accounts.balances.")
        bound = rebuild.add_mutually_exclusive_group()
        bound.add_argument("--as-of", dest="as_of", metavar="TIME", help="Build it as it was at this ISO 8601 time.")
        bound.add_argument("--position", type=int, metavar="N", help="Build it as it was at event position N.")
        rebuild.add_argument(
            "--into",
            choices=("copy", "live"),
            default="copy",
            help="For --as-of/--position: a copy beside the live model (default) or the live model itself.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "status":
            self._status()
        else:
            self._rebuild(options)

    def _status(self) -> None:
        self.stdout.write(
            f"{'projection':<24} {'mode':<7} {'status':<9} {'position':>9} {'lag':>7} {'lag s':>8} parked"
        )
        for projector in projections.registered():
            s = projections.ProjectionStatus.of(projector)
            self.stdout.write(
                f"{s.name:<24} {s.mode:<7} {s.state:<9} {s.position:>9} {s.lag_events:>6}{'+' if s.lag_more else ' '} "
                f"{s.lag_seconds:>8.1f} {s.parked}"
            )
            if s.last_error:
                self.stdout.write(f"  last error: {s.last_error}")

    def _rebuild(self, options: dict[str, Any]) -> None:
        # Run as a job, the rebuild is the requesting user's: the job's launcher binds them.
        user_id = bound_user_id()
        actor = get_user_model()._default_manager.filter(pk=user_id).first() if user_id is not None else None
        try:
            as_of_time = parse_as_of(options["as_of"]) if options["as_of"] else None
            as_of = as_of_time is not None or options["position"] is not None
            run = rebuild_start(
                projection=options["name"],
                actor=actor,
                as_of_position=options["position"],
                as_of_time=as_of_time,
                swap=(options["into"] == "live") if as_of else None,
                enqueue=False,
            )
        except RebuildError as exc:
            raise CommandError(str(exc)) from exc
        status = run_rebuild(run.pk)
        run = RebuildRun.objects.get(pk=run.pk)
        self.stdout.write(
            f"rebuild #{run.pk} of {run.projection} as of {run.as_of_label}: {status}, "
            f"{run.processed} events into generation {run.generation}"
            + (f", {run.skipped} of unknown types skipped" if run.skipped else "")
        )
