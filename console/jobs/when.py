"""When a schedule is due: cron expressions (parsed by cronsim) and fixed intervals, in a time zone.

cronsim is the parser Healthchecks runs for its cron checks: small, no dependencies, and it follows cronie's
rules across daylight-saving changes (a time skipped by the spring change runs at the first minute after it;
a time repeated by the autumn change runs once, while hourly expressions run in both hours), which is what
someone moving a crontab here expects. Times go in and come out in UTC; the zone only decides what
"02:30" means.
"""

from __future__ import annotations

import math
import zoneinfo
from datetime import UTC, datetime, timedelta, tzinfo

from cronsim import CronSim, CronSimError

# The longest interval a schedule may have: a year. Anything longer is a mistake, not a schedule.
MAX_INTERVAL_SECONDS = 366 * 24 * 3600


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; ``ValueError`` saying so when there is none of that name."""
    if not name or name != name.strip() or len(name) > 64:
        raise ValueError(f"“{name}” is not a time zone: use a name such as Europe/Paris or UTC.")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"“{name}” is not a time zone: use a name such as Europe/Paris or UTC.") from None


def check_cron(expression: str) -> None:
    """``ValueError`` with cronsim's reason when ``expression`` is not a cron expression it can run."""
    if len(expression) > 200 or "\n" in expression:
        raise ValueError("A cron expression is one short line such as “30 2 * * *”.")
    try:
        it = CronSim(expression, datetime.now(UTC))
        next(it)
    except CronSimError as exc:
        raise ValueError(f"Not a cron expression ({exc}): write five fields such as “30 2 * * *”.") from None
    except StopIteration:
        raise ValueError("This cron expression never matches a date (such as 30 February).") from None


def describe_cron(expression: str) -> str:
    """The expression in words ("At 02:30"), or "" when cronsim cannot say."""
    try:
        return str(CronSim(expression, datetime.now(UTC)).explain())
    except (CronSimError, ValueError):
        return ""


def next_cron(expression: str, zone_name: str, after: datetime) -> datetime | None:
    """The first time strictly after ``after`` that ``expression`` matches in ``zone_name``, in UTC."""
    local = after.astimezone(zone(zone_name))
    try:
        found = next(CronSim(expression, local))
    except StopIteration:
        return None
    return found.astimezone(UTC)


def last_cron(expression: str, zone_name: str, until: datetime) -> datetime | None:
    """The last time at or before ``until`` that ``expression`` matches, in UTC: the newest missed run."""
    local = until.astimezone(zone(zone_name))
    try:
        # cronsim's reverse iterator starts strictly before its start; a second later includes ``until``.
        found = next(CronSim(expression, local + timedelta(seconds=1), reverse=True))
    except StopIteration:
        return None
    return found.astimezone(UTC)


def next_interval(anchor: datetime, seconds: int, after: datetime) -> datetime:
    """The first of ``anchor + k * seconds`` strictly after ``after`` (k >= 0)."""
    if after < anchor:
        return anchor
    steps = math.floor((after - anchor).total_seconds() / seconds) + 1
    return anchor + timedelta(seconds=steps * seconds)


def last_interval(anchor: datetime, seconds: int, until: datetime) -> datetime | None:
    """The last of ``anchor + k * seconds`` at or before ``until``."""
    if until < anchor:
        return None
    steps = math.floor((until - anchor).total_seconds() / seconds)
    return anchor + timedelta(seconds=steps * seconds)
