"""Send windows (quiet hours): when a message of a class or category may reach a recipient, in their time zone.

A class declares ``send_window = (time(8), time(21))``, or the site sets one per category in
``CONSOLE_COMMS["SEND_WINDOWS"]``; a window whose end is before its start spans midnight. Mandatory and
time-critical classes never wait.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from console.comms.classes import MessageClass
from console.comms.conf import comms_settings


@dataclass(frozen=True)
class Window:
    opens: time
    closes: time
    # Who declared it, for the message page: "class shipping_update" or "category orders".
    source: str

    def contains(self, moment: time) -> bool:
        if self.opens <= self.closes:
            return self.opens <= moment < self.closes
        return moment >= self.opens or moment < self.closes

    def describe(self, zone: str) -> str:
        return f"{self.source} sends between {self.opens:%H:%M} and {self.closes:%H:%M} ({zone})"


def window_of(cls: type[MessageClass]) -> Window | None:
    if cls.mandatory or cls.time_critical:
        return None
    if cls.send_window is not None:
        return Window(*cls.send_window, source=f"class {cls.key}")
    configured = comms_settings().send_windows.get(cls.category)
    if configured is None:
        return None
    opens, closes = (time.fromisoformat(t) for t in configured)
    return Window(opens, closes, source=f"category {cls.category}")


def next_opening(window: Window, at: datetime, zone: ZoneInfo) -> datetime | None:
    """When the window next opens after ``at`` (aware), or None when ``at`` is inside it."""
    local = at.astimezone(zone)
    if window.contains(local.timetz().replace(tzinfo=None)):
        return None
    day = local.date()
    if window.opens <= window.closes and local.time() >= window.closes:
        day += timedelta(days=1)
    # Built as a wall-clock time in the zone: across a DST change the opening is still 08:00 local.
    return datetime.combine(day, window.opens, tzinfo=zone)
