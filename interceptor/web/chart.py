"""Trend charts as inline SVG: no script, no library, a few kilobytes whatever the history.

Weigh-ins arrive one at a time (streamed from the journal) and are folded into one value per local
day, then into at most `MAX_POINTS` buckets, so a decade costs what a year does. The 7-day moving
average is trailing and time-based (the mean of the days weighed in the last seven), so missed days
do not stretch it. Sans-I/O: values in, SVG text out, every text in it escaped here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

MAX_POINTS = 366
DOTS_UP_TO = 120  # beyond this many points a dot per point is noise, and bytes
AVERAGE_DAYS = 7
WIDTH, HEIGHT = 480, 220
LEFT, RIGHT, TOP, BOTTOM = 72, 12, 10, 26


@dataclass(frozen=True)
class DayValue:
    day: date
    value: float


@dataclass(frozen=True)
class Series:
    """Points to draw: per day (or per bucket of days) and the trailing moving average."""

    values: list[DayValue]
    average: list[DayValue]

    def as_json(self) -> list[dict[str, object]]:
        return [{"day": point.day.isoformat(), "value": point.value, "average_7d": average.value}
                for point, average in zip(self.values, self.average, strict=True)]


def zone_offsets(zone: ZoneInfo, start: float, end: float) -> list[tuple[float, int]]:
    """The zone's UTC offset periods from `start` to `end` (Unix seconds): [(period start, offset s)], for
    SQL to turn weigh-in times into local days. Sampled weekly, each change bisected to the second."""

    def offset(moment: float) -> int:
        return int(datetime.fromtimestamp(moment, zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    periods = [(start, offset(start))]
    step = 7 * 86400.0
    moment = start
    while moment < end:
        following = min(moment + step, end)
        if offset(following) != periods[-1][1]:
            low, high = moment, following  # offset(low) is the current one, offset(high) the next
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if offset(middle) == periods[-1][1] else (low, middle)
            periods.append((high, offset(high)))
        moment = following
    return periods


def days_from(rows: Iterable[tuple[int, float | None]]) -> list[DayValue]:
    """(local day ordinal, mean) rows from the journal, the days without a value left out."""
    return [DayValue(date.fromordinal(day), value) for day, value in rows
            if value is not None and math.isfinite(value)]


def moving_average(days: list[DayValue], window: int = AVERAGE_DAYS) -> list[DayValue]:
    """For each day, the mean of the daily values in the `window` days ending that day."""
    ordinals = [point.day.toordinal() for point in days]
    first = 0
    total = 0.0
    result = []
    for index, point in enumerate(days):
        total += point.value
        while ordinals[first] <= ordinals[index] - window:
            total -= days[first].value
            first += 1
        result.append(DayValue(point.day, total / (index - first + 1)))
    return result


def series(days: list[DayValue], width_days: int = 1) -> Series:
    """Points (days, or buckets of `width_days`) and their trailing average over at least 7 days."""
    return Series(days, moving_average(days, max(AVERAGE_DAYS, width_days)))


def bucket_width(first: date, last: date) -> int:
    """Days per point so that the range draws at most `MAX_POINTS` points."""
    return max(1, math.ceil(((last - first).days + 1) / MAX_POINTS))


def nice_step(span: float, ticks: int = 4) -> float:
    """A step of 1, 2 or 5 times a power of ten giving about `ticks` gridlines over `span`."""
    raw = max(span, 1e-9) / ticks
    power = 10 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def stone_step(span: float, ticks: int = 4) -> float:
    """For people who read stones (values in pounds): gridlines a whole number of half-stones apart."""
    raw = max(span, 1e-9) / ticks
    return nice_step(span, ticks) if raw <= 5 else next(s for s in (7, 14, 28, 70, 140, 280) if s >= raw) \
        if raw <= 280 else nice_step(span, ticks)


def _date_ticks(first: date, last: date) -> list[tuple[date, str]]:
    span = (last - first).days
    ticks: list[tuple[date, str]] = []
    if span <= 45:  # weekly, on Mondays
        day = first + timedelta(days=(7 - first.weekday()) % 7)
        while day <= last:
            ticks.append((day, f"{day.day} {day.strftime('%b')}"))
            day += timedelta(days=7)
        return ticks
    months = 1 if span <= 400 else 3 if span <= 1200 else 12
    year, month = first.year, first.month
    while True:
        month += 1
        if month > 12:
            year, month = year + 1, 1
        day = date(year, month, 1)
        if day > last:
            return ticks
        if (month - 1) % months == 0:
            text = str(year) if months == 12 or month == 1 else day.strftime("%b")
            ticks.append((day, text))


def svg(values: Series, *, title: str, tick_text: Callable[[float], str], goal: float | None = None,
        goal_text: str = "", css_class: str = "chart", step_for: Callable[[float], float] = nice_step) -> str:
    """The chart as an `<svg>` element scaled by CSS; `title` names it for screen readers."""
    points, average = values.values, values.average
    head = (f'<svg class="{css_class}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img"><title>{escape(title)}</title>')
    if not points:
        return f'{head}<text class="empty" x="{WIDTH / 2}" y="{HEIGHT / 2}">nothing to draw in this range</text></svg>'
    low = min(min(p.value for p in points), min(p.value for p in average))
    high = max(max(p.value for p in points), max(p.value for p in average))
    if goal is not None:
        low, high = min(low, goal), max(high, goal)
    step = step_for(high - low)
    low = math.floor(low / step) * step
    high = max(math.ceil(high / step) * step, low + step)
    first, last = points[0].day, points[-1].day
    days = max((last - first).days, 1)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(day: date) -> float:
        return LEFT + (day - first).days / days * plot_w if last != first else LEFT + plot_w / 2

    def y(value: float) -> float:
        return TOP + (high - value) / (high - low) * plot_h

    parts = [head, '<g class="grid">']
    tick = low
    while tick <= high + step / 2:
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(tick):.1f}" y2="{y(tick):.1f}"/>'
                     f'<text class="y" x="{LEFT - 6}" y="{y(tick) + 4:.1f}">{escape(tick_text(tick))}</text>')
        tick += step
    for day, text in _date_ticks(first, last):
        if not LEFT + 12 <= x(day) <= WIDTH - RIGHT - 16:  # a label half off the plot is only clutter
            continue
        parts.append(f'<text class="x" x="{x(day):.1f}" y="{HEIGHT - 6}">{escape(text)}</text>')
    parts.append("</g>")
    if goal is not None:
        parts.append(f'<line class="goal" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y(goal):.1f}" y2="{y(goal):.1f}"/>'
                     f'<text class="goal" x="{WIDTH - RIGHT - 4}" y="{y(goal) - 5:.1f}">{escape(goal_text)}</text>')
    if len(points) <= DOTS_UP_TO:
        parts.extend(f'<circle class="day" cx="{x(p.day):.1f}" cy="{y(p.value):.1f}" r="3">'
                     f'<title>{p.day.isoformat()}: {escape(tick_text(p.value))}</title></circle>' for p in points)
    else:
        parts.append('<polyline class="day" points="'
                     + " ".join(f"{x(p.day):.1f},{y(p.value):.1f}" for p in points) + '"/>')
    parts.append('<polyline class="average" points="'
                 + " ".join(f"{x(p.day):.1f},{y(p.value):.1f}" for p in average) + '"/>')
    parts.append("</svg>")
    return "".join(parts)
