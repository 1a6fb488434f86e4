"""What people and other systems type into the console, read strictly: numbers and times the database can hold.

Every view that reads an id, a position or a version from a query string, a form or a header uses
``whole_number``; every time filter validates with ``representable_time``. Anything else is a 4xx or a form
error, never an exception in the view.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

# The largest id, position or version the console stores: a signed 64-bit integer on every database.
MAX_WHOLE_NUMBER = 2**63 - 1


def whole_number(text: str | None, *, maximum: int = MAX_WHOLE_NUMBER) -> int | None:
    """``text`` as a whole number written in ASCII digits only, or None when it is anything else.

    ``str.isdigit()`` accepts "²" and "①", which ``int()`` then refuses; ``int()`` itself accepts " 7", "+7",
    "1_000" and Arabic-Indic digits, and raises on more than 4,300 digits. None of those is an id. A number
    above ``maximum`` is None too: the database could not hold it, so nothing has it as an id.
    """
    if not text or not text.isascii() or not text.isdigit() or len(text) > len(str(maximum)):
        return None
    value = int(text)
    return value if value <= maximum else None


def representable_time(value: date | datetime) -> None:
    """Validator: refuse a time (or the whole of a day) that cannot be compared with stored times.

    Stored times are UTC. "0001-01-01T00:00+01:00" is a valid ISO 8601 time whose UTC is before year 1, which
    Python cannot represent; a day at either end of the calendar in a site time zone east or west of UTC is
    the same. The database adapter would raise on them; the form says so next to the field instead.
    """
    if isinstance(value, datetime):
        moments = [value]
    else:
        moments = [datetime.combine(value, time.min), datetime.combine(value, time.max)]
    for moment in moments:
        try:
            (timezone.make_aware(moment) if timezone.is_naive(moment) else moment).astimezone(UTC)
        except OverflowError:
            raise ValidationError(
                "This time is too far in the past or the future to compare with the log: use a year from 0002 to 9998.",
                code="out_of_range",
            ) from None


class MomentField(forms.CharField):
    """A day (``2026-12-03``) or a moment (``2026-12-03T09:30``, ``...Z``, ``...+01:00``), for since/until filters.

    A day filters whole days, as people type them; a moment filters to the second, as the charts link to a bar's
    interval. The value is a ``date`` or an aware ``datetime`` (a naive one is in the site's time zone).
    """

    default_error_messages = {
        "invalid": "Enter a valid date. A time works too: YYYY-MM-DDTHH:MM, with Z or an offset if not local.",
    }
    default_validators = [representable_time]

    def to_python(self, value: Any) -> date | datetime | None:  # type: ignore[override]  # a date, not text
        text = str(super().to_python(value) or "").strip()
        if not text:
            return None
        try:
            if len(text) == len("YYYY-MM-DD"):
                return date.fromisoformat(text)
            return datetime.fromisoformat(text)
        except ValueError:
            raise ValidationError(self.error_messages["invalid"], code="invalid") from None


def _aware(moment: datetime) -> datetime:
    return timezone.make_aware(moment) if timezone.is_naive(moment) else moment


def since_q(field: str, value: date | datetime) -> Q:
    """``field`` at or after ``value`` (a day: from its start)."""
    if isinstance(value, datetime):
        return Q(**{f"{field}__gte": _aware(value)})
    return Q(**{f"{field}__gte": timezone.make_aware(datetime.combine(value, time.min))})


def until_q(field: str, value: date | datetime) -> Q:
    """``field`` before ``value`` (a moment: exclusive, so bars side by side never share a row; a day: to its end)."""
    if isinstance(value, datetime):
        return Q(**{f"{field}__lt": _aware(value)})
    return Q(**{f"{field}__lte": timezone.make_aware(datetime.combine(value, time.max))})
