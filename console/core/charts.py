"""Charts over time as server-rendered SVG: bar geometry worked out here, drawn by ``core/_charts.html``.

A chart is a few series of numbers, one per bar (a time interval), stacked. The template draws each bar as an
SVG ``<rect>`` inside a link to the table filtered to that interval (so a click works without JavaScript and
the address can be bookmarked), titles and describes the chart for screen readers, and offers the same numbers
as a table. Apps register a ``ChartSource`` per page (``register_source``); the chart region of a page polls
``core:charts`` for itself while the page is visible.

Ranges read the coarsest stored grain that still gives enough bars: minutes for the last hour, hours for the
last day and week (six-hour bars), days for the last month. Bars start on UTC boundaries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from console.core.conf import core_settings
from console.core.inputs import whole_number

MINUTE, HOUR, DAY = 60, 3600, 86400

# The drawing's own units (the SVG scales to its box); bars leave a gap of a tenth of their slot.
WIDTH, HEIGHT = 600, 150


@dataclass(frozen=True)
class ChartRange:
    slug: str
    label: str
    span: int  # seconds shown
    grain: int  # seconds per stored bucket read
    bar: int  # seconds per bar (a multiple of grain)

    def starts(self, now: datetime | None = None) -> list[datetime]:
        """The bars' start times: the last one holds ``now``."""
        epoch = int((now or timezone.now()).timestamp())
        end = epoch - epoch % self.bar + self.bar
        return [datetime.fromtimestamp(start, tz=UTC) for start in range(end - self.span, end, self.bar)]


RANGES: dict[str, ChartRange] = {
    r.slug: r
    for r in (
        ChartRange("1h", "last hour", HOUR, MINUTE, MINUTE),
        ChartRange("24h", "last 24 hours", DAY, HOUR, HOUR),
        ChartRange("7d", "last 7 days", 7 * DAY, HOUR, 6 * HOUR),
        ChartRange("30d", "last 30 days", 30 * DAY, DAY, DAY),
    )
}
DEFAULT_RANGE = "1h"


def chart_range(slug: str | None) -> ChartRange:
    """The range a query string names; the default for anything else (a chart never fails on a typo)."""
    return RANGES.get(slug or "", RANGES[DEFAULT_RANGE])


def per_bar(values: Mapping[datetime, float], starts: Sequence[datetime], bar: int) -> list[float]:
    """``values`` by bucket start summed into the bars starting at ``starts`` (outside ones are dropped)."""
    summed = [0.0] * len(starts)
    if not starts:
        return summed
    first = starts[0].timestamp()
    for moment, value in values.items():
        index = int((moment.timestamp() - first) // bar)
        if 0 <= index < len(summed):
            summed[index] += value
    return summed


Link = Callable[[datetime, datetime], str]


@dataclass(frozen=True)
class Series:
    label: str
    values: Sequence[float]
    # The table that lists what a bar of this series counts, for the bar's interval; None: no link.
    link: Link | None = None
    tone: str = ""  # "ok", "bad", "warn" or "" (neutral): shown with the label, never by colour alone


@dataclass(frozen=True)
class Shape:
    x: float
    y: float
    width: float
    height: float
    series: int
    tone: str
    label: str
    href: str


@dataclass(frozen=True)
class Row:
    when: str
    cells: list[tuple[str, str]]  # (value, href: empty when there is nothing to list)
    total: str


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,.1f}"


@dataclass
class Chart:
    """Stacked bars of ``series`` over the intervals starting at ``starts``, each ``bar`` seconds long.

    What the template reads is worked out once per chart (it reads the totals and rows more than once)."""

    slug: str
    title: str
    description: str
    unit: str
    starts: Sequence[datetime]
    bar: int
    series: Sequence[Series]
    # Extra rows under the chart (label, value pairs), such as percentiles per command.
    notes: Sequence[tuple[str, ...]] = field(default_factory=list)
    notes_header: Sequence[str] = field(default_factory=list)

    def _when(self, start: datetime) -> str:
        local = timezone.localtime(start)
        return local.strftime("%Y-%m-%d" if self.bar >= DAY else "%Y-%m-%d %H:%M")

    def _href(self, series: Series, start: datetime) -> str:
        return series.link(start, start + timedelta(seconds=self.bar)) if series.link else ""

    @cached_property
    def totals(self) -> list[float]:
        return [sum(series.values[index] for series in self.series) for index in range(len(self.starts))]

    @cached_property
    def peak(self) -> float:
        return max(self.totals, default=0.0)

    @cached_property
    def total(self) -> str:
        return _number(sum(self.totals))

    @cached_property
    def peak_text(self) -> str:
        return _number(self.peak)

    @property
    def width(self) -> int:
        return WIDTH

    @property
    def height(self) -> int:
        return HEIGHT

    @cached_property
    def shapes(self) -> list[Shape]:
        """One rectangle per non-empty (bar, series), stacked upwards in series order."""
        peak = self.peak
        count = len(self.starts)
        if not peak or not count:
            return []
        slot = WIDTH / count
        width = max(slot * 0.9, 1.0)
        shapes = []
        for index, start in enumerate(self.starts):
            base = float(HEIGHT)
            when = self._when(start)
            for number, series in enumerate(self.series):
                value = series.values[index]
                if not value:
                    continue
                height = max(value / peak * HEIGHT, 1.0)
                base -= height
                label = f"{when}: {_number(value)} {series.label}"
                shapes.append(
                    Shape(
                        round(index * slot, 2),
                        round(base, 2),
                        round(width, 2),
                        round(height, 2),
                        number,
                        series.tone,
                        label,
                        self._href(series, start),
                    )
                )
        return shapes

    @cached_property
    def rows(self) -> list[Row]:
        """The numbers behind the bars, for the table: only intervals with something in them."""
        totals = self.totals
        return [
            Row(
                self._when(start),
                [
                    (_number(series.values[index]), self._href(series, start) if series.values[index] else "")
                    for series in self.series
                ],
                _number(totals[index]),
            )
            for index, start in enumerate(self.starts)
            if totals[index]
        ]

    # The bars and the table's rows are the most of a page's markup (a dashboard draws hundreds of each):
    # written here rather than by the template language, which takes ten times as long per element.
    @cached_property
    def bars_html(self) -> SafeString:
        """The SVG rectangles, each inside a link to its interval's table where it has one."""
        parts = []
        for shape in self.shapes:
            label = escape(shape.label)
            rect = (
                f'<rect x="{shape.x}" y="{shape.y}" width="{shape.width}" height="{shape.height}"'
                f' class="series-{shape.series} {escape(shape.tone)}"><title>{label}</title></rect>'
            )
            if shape.href:
                rect = f'<a href="{escape(shape.href)}" aria-label="{label}" data-testid="bar">{rect}</a>'
            parts.append(rect)
        return mark_safe("\n".join(parts))  # every value above is escaped

    @cached_property
    def rows_html(self) -> SafeString:
        """The numbers table's body rows: each interval with something in it, a cell per series and the total."""
        lines = []
        for row in self.rows:
            cells = "".join(
                f'<td><a href="{escape(href)}">{escape(value)}</a></td>' if href else f"<td>{escape(value)}</td>"
                for value, href in row.cells
            )
            lines.append(f'<tr><th scope="row">{escape(row.when)}</th>{cells}<td>{escape(row.total)}</td></tr>')
        return mark_safe("\n".join(lines))  # every value above is escaped

    @property
    def first_label(self) -> str:
        return self._when(self.starts[0]) if self.starts else ""

    @property
    def last_label(self) -> str:
        return self._when(self.starts[-1]) if self.starts else ""


def filtered(url: str, **params: str) -> Link:
    """A link maker: ``url`` with ``params`` and the bar's ``since`` and ``until`` (ISO, UTC)."""
    # A dashboard makes hundreds of these links (each twice: the bar and the table): the fixed part is encoded
    # once, the moments as urlencode() would ("%3A" for ":").
    prefix = f"{url}?{urlencode(params)}&" if params else f"{url}?"

    def link(start: datetime, end: datetime) -> str:
        since = start.strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
        until = end.strftime("%Y-%m-%dT%H:%M:%SZ").replace(":", "%3A")
        return f"{prefix}since={since}&until={until}"

    return link


Build = Callable[[ChartRange, int | None], list[Chart]]


@dataclass(frozen=True)
class ChartSource:
    """A page's charts: ``charts(range, of)`` builds them (``of``: the object the page shows, such as a webhook
    endpoint's id); ``dashboard`` the ones it adds to the dashboard; ``permission`` guards both."""

    name: str
    charts: Build
    dashboard: Callable[[ChartRange], list[Chart]] | None = None
    permission: str = ""
    order: int = 100


sources: dict[str, ChartSource] = {}
DASHBOARD = "dashboard"


def register_source(source: ChartSource) -> None:
    if source.name == DASHBOARD:
        raise ValueError(f"{DASHBOARD!r} is the dashboard's own chart region")
    sources[source.name] = source


def build(request: HttpRequest, name: str, of: int | None = None) -> list[Chart]:
    """The charts of source ``name`` (or the dashboard's) the user may see, for the range the request asks."""
    selected = chart_range(request.GET.get("range"))
    if name == DASHBOARD:
        return [
            chart
            for source in sorted(sources.values(), key=lambda source: source.order)
            if source.dashboard is not None and (not source.permission or request.user.has_perm(source.permission))
            for chart in source.dashboard(selected)
        ]
    source = sources[name]
    if source.permission and not request.user.has_perm(source.permission):
        return []
    return source.charts(selected, of)


def panel(request: HttpRequest, name: str, of: int | None = None) -> dict[str, Any]:
    """The context of ``core/_charts.html``: the charts and how their region polls and changes range."""
    selected = chart_range(request.GET.get("range"))
    url = reverse("core:charts", args=[name])
    base = {"of": str(of)} if of is not None else {}
    return {
        "name": name,
        "charts": build(request, name, of),
        "range": selected,
        "ranges": [
            {
                "slug": r.slug,
                "label": r.label,
                "current": r.slug == selected.slug,
                "page": "?" + urlencode({"range": r.slug}),
                "url": f"{url}?{urlencode({**base, 'range': r.slug})}",
            }
            for r in RANGES.values()
        ],
        "url": f"{url}?{urlencode({**base, 'range': selected.slug})}",
        "poll_seconds": core_settings().chart_poll_seconds,
    }


def region(request: HttpRequest, name: str, of: int | None = None) -> Callable[[], dict[str, Any]]:
    """``panel()`` for a page's context, built only if the template draws it (not for a table's fragment)."""
    return functools.partial(panel, request, name, of)


def requested_of(request: HttpRequest) -> int | None:
    return whole_number(request.GET.get("of"))
