from __future__ import annotations

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandParser


def iso_date(value: str) -> date:
    return date.fromisoformat(value)


class Command(BaseCommand):
    help = "Demo: build a report; exercises every kind of argument the job form supports."
    console_job_class = "read-only"

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Report title.")
        parser.add_argument("--regions", nargs="+", help="Regions to include (all when not given).")
        parser.add_argument("--format", choices=["csv", "json", "html"], default="csv", help="Output format.")
        parser.add_argument("--since", type=iso_date, help="First day included (YYYY-MM-DD).")
        parser.add_argument("--limit", type=int, default=100, help="Rows at most.")
        parser.add_argument("--ratio", type=float, default=1.0, help="Sampling ratio.")
        parser.add_argument("--tag", action="append", help="Tag the report (repeatable).")
        parser.add_argument("-x", "--extra", action="count", default=0, help="More detail per -x.")
        parser.add_argument("--columns", nargs=2, metavar=("FIRST", "SECOND"), help="Two columns to pivot.")
        parser.add_argument("--api-token", help="Token for the upstream API.")
        parser.add_argument("--dry-run", action="store_true", help="Compute, but do not store the report.")
        delivery = parser.add_argument_group("Delivery", "Where the finished report goes.")
        target = delivery.add_mutually_exclusive_group()
        target.add_argument("--email", help="Send it to this address.")
        target.add_argument("--upload", action="store_true", help="Upload it to the report store.")
        sub = parser.add_subparsers(dest="action", required=True, title="Actions")
        build = sub.add_parser("build", help="Build the report now.")
        build.add_argument("--parallel", type=int, choices=[1, 2, 4], default=1, help="Workers.")
        schedule = sub.add_parser("schedule", help="Schedule it.")
        schedule.add_argument("cron", help="When, as a cron expression.")

    def handle(self, *args: Any, **options: Any) -> None:
        shown = {key: ("••••••" if key == "api_token" and value else value) for key, value in options.items()}
        for key in ("name", "regions", "format", "since", "limit", "ratio", "tag", "extra", "columns", "action"):
            self.stdout.write(f"{key}: {shown.get(key)}")
        self.stdout.write(f"delivery: {options.get('email') or ('upload' if options.get('upload') else 'none')}")
        self.stdout.write(self.style.SUCCESS("Report ready."))
