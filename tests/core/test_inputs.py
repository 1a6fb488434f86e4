"""The strict readers of typed input: whole numbers in ASCII digits, and times the database can compare."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from console.core.inputs import MAX_WHOLE_NUMBER, representable_time, whole_number


@pytest.mark.parametrize(("text", "number"), [("0", 0), ("7", 7), ("0042", 42), (str(MAX_WHOLE_NUMBER), 2**63 - 1)])
def test_it_reads_ascii_digits(text: str, number: int) -> None:
    assert whole_number(text) == number


@pytest.mark.parametrize(
    "text",
    [
        "²",  # str.isdigit() says yes, int() says no
        "1²",
        "①",
        "\u0661\u0662",  # int() reads Arabic-Indic digits; no id is written so
        "\U0001d7d7",  # MATHEMATICAL BOLD DIGIT NINE
        " 7",
        "7 ",
        "+7",
        "-7",
        "1_000",
        "1e3",
        "0x1f",
        "1.0",
        "",
        None,
        str(MAX_WHOLE_NUMBER + 1),
        "9" * 5000,  # int() refuses more than 4,300 digits with a ValueError of its own
    ],
)
def test_it_refuses_anything_else(text: str | None) -> None:
    assert whole_number(text) is None


def test_it_honours_a_smaller_maximum() -> None:
    assert whole_number("300", maximum=300) == 300
    assert whole_number("301", maximum=300) is None


@pytest.mark.parametrize(
    "value",
    [
        datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),  # UTC would be in year 0
        datetime(9999, 12, 31, 23, 59, tzinfo=timezone(timedelta(hours=-1))),  # UTC would be in year 10000
    ],
)
def test_it_refuses_times_whose_utc_python_cannot_hold(value: datetime) -> None:
    with pytest.raises(ValidationError) as raised:
        representable_time(value)
    assert raised.value.code == "out_of_range"


@override_settings(TIME_ZONE="America/New_York")
def test_it_refuses_a_day_at_the_end_of_the_calendar_in_a_zone_west_of_utc() -> None:
    with pytest.raises(ValidationError):
        representable_time(date(9999, 12, 31))
    with pytest.raises(ValidationError):
        representable_time(datetime(9999, 12, 31, 23, 0))  # naive: in the site's zone
    representable_time(date(1, 1, 1))


@pytest.mark.parametrize(
    "value",
    [datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, 23, 59, tzinfo=UTC), date(1, 1, 1), date(9999, 12, 31)],
)
def test_it_accepts_the_whole_calendar_in_utc(value: date) -> None:
    representable_time(value)
