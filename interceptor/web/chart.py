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


class Daily:
    """Folds (Unix time, value) samples, oldest first, into the mean of each local day."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.days: list[DayValue] = []
        self._day: date | None = None
        self._total = 0.0
        self._count = 0

    def add(self, taken_at: float, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        moment = datetime.fromtimestamp(taken_at, self.zone).date()
        if moment != self._day:
            self._close()
            self._day, self._total, self._count = moment, 0.0, 0
        self._total += value
        self._count += 1

    def _close(self) -> None:
        if self._count and self._day is not None:
            self.days.append(DayValue(self._day, self._total / self._count))
            self._count = 0

    def result(self) -> list[DayValue]:
        self._close()
        return self.days


def daily(samples: Iterable[tuple[float, float | None]], zone: ZoneInfo) -> list[DayValue]:
    """(Unix time, value) oldest first → the mean of each local day's values (days without one left out)."""
    folder = Daily(zone)
    for taken_at, value in samples:
        folder.add(taken_at, value)
    return folder.result()


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


def series(days: list[DayValue]) -> Series:
    """Moving average over the days, then both thinned to `MAX_POINTS` buckets of equal length."""
    average = moving_average(days)
    if len(days) <= MAX_POINTS:
        return Series(days, average)
    span = (days[-1].day - days[0].day).days + 1
    width = math.ceil(span / MAX_POINTS)
    return Series(_buckets(days, width), _buckets(average, width))


def _buckets(days: list[DayValue], width: int) -> list[DayValue]:
    """Means of `width`-day buckets, each dated by its last day."""
    start = days[0].day.toordinal()
    result: list[DayValue] = []
    bucket, total, count, last = -1, 0.0, 0, days[0].day
    for point in days:
        index = (point.day.toordinal() - start) // width
        if index != bucket and count:
            result.append(DayValue(last, total / count))
            total, count = 0.0, 0
        bucket = index
        total += point.value
        count += 1
        last = point.day
    result.append(DayValue(last, total / count))
    return result


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
