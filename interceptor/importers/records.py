"""What every export-file reader yields: records of weigh-ins, refusals of rows, or a format error.

A reader is a pure function over a file's bytes (no disk, no clock, no journal): it yields one
`Record` per weigh-in it understood and one `Refusal` per row it could not take, with the row and the
reason, and raises `FormatError` (naming the file and, where there is one, the row) when the file as a
whole cannot be read. Values are already in the vocabulary (SI units, `model.READING_UNITS` and
`METRIC_UNITS` names); who stood on the scale is left as a hint (a height, a name) for the caller to
map onto the household.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Plausibility bounds applied to every imported row until the pipeline has its own validation
# layer (issue 11): a row outside them is skipped with the bound it broke, never stored.
WEIGHT_BOUNDS_KG = (2.0, 400.0)
IMPEDANCE_BOUNDS_OHM = (1.0, 5000.0)
HEART_RATE_BOUNDS_BPM = (20.0, 250.0)
EARLIEST = datetime(1980, 1, 1, tzinfo=UTC)  # before any consumer scale kept a history
FUTURE_SLACK = timedelta(days=1)  # a clock or time zone a day ahead is still the same weigh-in


class FormatError(ValueError):
    """The file cannot be read as the format it claims (or any format we know): says which file,
    and which row when one is to blame. Nothing of such a file is imported."""


@dataclass(frozen=True, slots=True)
class Who:
    """What a row says about who stood on the scale: Zepp tells family members apart only by
    height; SmartScaleConnect writes a user name; most files say nothing (one file, one person)."""

    height_cm: float | None = None
    name: str | None = None


NOBODY_NAMED = Who()


@dataclass(frozen=True, slots=True)
class Record:
    """One weigh-in as a file describes it. `where` names the row (`BODY/BODY_1.csv row 14`);
    `values` are raw readings (weight, impedance, heart rate); `vendor` the values the vendor's app
    computed (body fat, water, ...), kept under that label; `origin` distinguishes sources inside one
    file (a Mi Fitness scale id), empty when the file is one source."""

    where: str
    taken_at: datetime
    values: dict[str, float]
    vendor: dict[str, float] = field(default_factory=dict)
    who: Who = NOBODY_NAMED
    origin: str = ""


@dataclass(frozen=True, slots=True)
class Refusal:
    """A row left out, and why, in words a person can act on."""

    where: str
    reason: str


Row = Record | Refusal


@dataclass(frozen=True)
class ReadOptions:
    """What a reader needs beyond the bytes: the household's time zone (for files whose times carry
    none), the zip password, and, for files that do not say their weight unit, the person's height to
    check it against (Fitbit) or the unit the person named."""

    zone: ZoneInfo
    password: bytes | None = None
    height_cm: float | None = None
    weight_unit: str | None = None  # "kg" or "lb": only when the person says so


NO_VALUE = frozenset({"null", "none", "nan", "-", "--"})


def number(text: str | None) -> float | None:
    """A cell as a number: empty, `null`, `NaN` or `-` are no value; a comma decimal is accepted."""
    if text is None:
        return None
    try:
        value = float(text)  # the common case, and the fast one: a plain number
    except ValueError:
        cell = text.strip().strip('"')
        if not cell or cell.lower() in NO_VALUE:
            return None
        value = float(cell.replace(",", ".")) if cell.count(",") == 1 and "." not in cell else float(cell)
    return value if math.isfinite(value) else None


def present(values: dict[str, float | None]) -> dict[str, float]:
    """Only the values a row actually had (zero is "not measured" in every format we read)."""
    return {name: value for name, value in values.items() if value is not None and value != 0}


def local(day: date, moment: time, zone: ZoneInfo) -> datetime:
    """A wall-clock time of a file that states no offset, in the household's zone."""
    return datetime.combine(day, moment, zone)


DATE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M",
                     "%d.%m.%Y %H:%M", "%d.%m.%Y %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M")


def moment(text: str, zone: ZoneInfo) -> datetime:
    """A date and time as files write them: ISO 8601 with or without an offset (`+0000` too), or
    the day-first form of openScale 2.x; a time without an offset is in `zone`. ValueError if none."""
    cell = text.strip().strip('"')
    try:
        parsed = datetime.fromisoformat(cell.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        for pattern in DATE_TIME_FORMATS:
            try:
                parsed = datetime.strptime(cell, pattern)
                break
            except ValueError:
                continue
        if parsed is None:
            raise ValueError(f"unparsable date {cell[:40]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def implausible(record: Record, now: datetime) -> str | None:
    """Why a record cannot be a real weigh-in, or None. Zero weight is called so: files use it for
    "deleted" or "not measured"."""
    weight = record.values.get("weight_kg")
    if weight is None:
        return "no weight"
    if weight == 0:
        return "zero weight"
    low, high = WEIGHT_BOUNDS_KG
    if not low <= weight <= high:
        return f"weight {weight:g} kg is outside {low:g}–{high:g} kg"
    for name, (low, high) in (("impedance_ohm", IMPEDANCE_BOUNDS_OHM), ("impedance_low_ohm", IMPEDANCE_BOUNDS_OHM),
                              ("impedance_high_ohm", IMPEDANCE_BOUNDS_OHM), ("heart_rate_bpm", HEART_RATE_BOUNDS_BPM)):
        value = record.values.get(name)
        if value is not None and not low <= value <= high:
            return f"{name} {value:g} is outside {low:g}–{high:g}"
    if record.taken_at < EARLIEST:
        return f"time {record.taken_at:%Y-%m-%d} is before {EARLIEST:%Y}"
    if record.taken_at > now + FUTURE_SLACK:
        return f"time {record.taken_at:%Y-%m-%d %H:%M} is in the future"
    return None


def checked(rows: Iterator[Row], now: datetime) -> Iterator[Row]:
    """Rows with every implausible record turned into a refusal that names the bound it broke."""
    for row in rows:
        if isinstance(row, Record):
            reason = implausible(row, now)
            if reason is not None:
                yield Refusal(row.where, reason)
                continue
        yield row
