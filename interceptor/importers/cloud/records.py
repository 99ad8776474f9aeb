"""One weigh-in as a vendor cloud keeps it, parsed; or the reason it is skipped. Pure.

The cloud parsers (xiaomi/records.py, zepp/records.py) fill `CloudRecord` with our vocabulary:
`values` are readings (weight, heart rate, impedances), `vendor_metrics` the vendor's own
numbers (labelled `vendor` by the pipeline), `raw` the numeric fields that have no name in the
vocabulary, under `<cloud>_<field>`. Vendors write numbers as numbers or strings (Xiaomi's
`fromSource` 2); `number` takes both and refuses booleans, NaN and infinities.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

# What a bathroom scale can weigh: outside it a record is a vendor glitch, not a weigh-in.
MIN_WEIGHT_KG = 2.0
MAX_WEIGHT_KG = 300.0
# Weigh-ins before the first of these scales were sold, or a day in the future, are clock glitches.
EARLIEST = datetime(2014, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)
MAX_BODY_CHARS = 64 * 1024  # a record's JSON text; real ones are well under 2 kB


@dataclass(frozen=True)
class CloudRecord:
    taken_at: datetime
    key: str  # what identifies the record in its cloud (a page boundary repeats it)
    values: dict[str, float]
    vendor_metrics: dict[str, float] = field(default_factory=dict)
    raw: dict[str, float] = field(default_factory=dict)
    member: str | None = None  # the member name the vendor app gave the weigh-in
    owner: bool = False  # the account owner's own weigh-in (no member named)
    device: str | None = None  # the vendor's id of the scale (did, sid, MAC)
    manual: bool = False  # typed into the app by hand, not weighed
    unknown: frozenset[str] = frozenset()  # fields nobody documented (logged once per import)


@dataclass(frozen=True)
class Skip:
    """A record left out, and why (shown in the import summary); `other` for a record that is not
    about weight at all (a step count), which is counted, not listed."""

    reason: str
    other: bool = False


def number(value: Any) -> float | None:
    """A finite number from a number or a numeric string; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        result = float(value)
    elif isinstance(value, str):
        try:
            result = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return result if math.isfinite(result) else None


def positive(value: Any) -> float | None:
    """A number above zero; vendors write 0 for "not measured"."""
    result = number(value)
    return result if result is not None and result > 0 else None


def moment(seconds: float | None, now: datetime) -> datetime | Skip:
    """A plausible weigh-in time from Unix seconds."""
    if seconds is None:
        return Skip("no time")
    try:
        when = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return Skip("time out of range")
    if not EARLIEST <= when <= now + FUTURE_TOLERANCE:
        return Skip("time out of range")
    return when


def weight(value: Any) -> float | Skip:
    kilograms = number(value)
    if kilograms is None or kilograms == 0:
        return Skip("no weight")
    if not MIN_WEIGHT_KG <= kilograms <= MAX_WEIGHT_KG:
        return Skip(f"weight outside {MIN_WEIGHT_KG:g}-{MAX_WEIGHT_KG:g} kg")
    return kilograms


def impedances(first: Any, second: Any) -> dict[str, float]:
    """Two impedances are the two frequencies of a dual-frequency scale, named by value (DESIGN.md:
    the larger is the lower frequency); one alone is a single-frequency impedance."""
    found = sorted(value for value in (positive(first), positive(second)) if value is not None)
    if len(found) == 2:
        return {"impedance_high_ohm": found[0], "impedance_low_ohm": found[1]}
    if len(found) == 1:
        return {"impedance_ohm": found[0]}
    return {}


def pick(source: dict[str, Any], names: dict[str, str], *, keep_zero: bool = False) -> dict[str, float]:
    """`names`: vendor field → our name; fields that are absent, not numbers (or 0) are left out."""
    picked = {}
    for field_name, ours in names.items():
        value = number(source.get(field_name)) if keep_zero else positive(source.get(field_name))
        if value is not None:
            picked[ours] = value
    return picked


def json_object(value: Any) -> dict[str, Any] | None:
    """A JSON object given as one (or as the JSON text of one, as the clouds nest them)."""
    if isinstance(value, dict):
        return value
    if not isinstance(value, str) or len(value) > MAX_BODY_CHARS:
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None


def opened(seconds: float | None, body: Any, what: str, now: datetime) -> tuple[datetime, dict[str, Any], float] | Skip:
    """What every record needs: a plausible time, a body that is a JSON object, a plausible weight."""
    when = moment(seconds, now)
    if isinstance(when, Skip):
        return when
    fields = json_object(body)
    if fields is None:
        return Skip(f"its {what} is not a JSON object")
    kilograms = weight(fields.get("weight"))
    if isinstance(kilograms, Skip):
        return kilograms
    return when, fields, kilograms
