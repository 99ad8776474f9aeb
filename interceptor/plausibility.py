"""What a reading may say and still be about a person on a scale: one table of bounds for every source.

The pipeline checks every reading here before anything is stored (Withings HTTP, BLE, importers
alike), so sources only parse and never decide what is plausible. Metrics a vendor computed
(`vendor_metrics`) are held to the same bounds as ours would be: a vendor's body fat of 1e300 % is
refused before a formula can derive a BMR from it. Sans-I/O: values and `now` in, a refusal that names the field
and the bound out. Each bound says where it comes from; references are to `shared/reference/`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from interceptor.model import METRIC_UNITS, READING_UNITS, Reading, iso_utc


@dataclass(frozen=True)
class Bound:
    """Inclusive range of a quantity in its vocabulary unit, and why it is that range."""

    low: float
    high: float
    why: str


# Readings (model.READING_UNITS): what a device measured.
READING_BOUNDS: dict[str, Bound] = {
    "weight_kg": Bound(2, 400, "issue 11: below 2 kg nobody stands on the scale; the scales we read stop well "
                               "short of 400 kg (Mi Scale: u16/200 = 327.675 kg, ble-scales.md §1.1, §1.3; S400: "
                               "11 bits of 0.1 kg = 204.7 kg, ble-vectors.md)"),
    "impedance_ohm": Bound(1, 3000, "Mi Scale 2: a u16 in ohm (ble-scales.md §1.1) where 0 means none; ESPHome and "
                                    "bt-mqtt-gateway drop 3000 Ω and more as no body (§1.3)"),
    "impedance_high_ohm": Bound(1, 1638.3, "S400: 14 bits of 0.1 Ω (bits 18-31 of the packed value, ble-vectors.md), "
                                           "so at most 1638.3 Ω; 0 means none"),
    "impedance_low_ohm": Bound(1, 1638.3, "S400, as impedance_high_ohm"),
    "heart_rate_bpm": Bound(20, 250, "issue 11; wider than the S400 can encode (hr_raw + 50 = 51-176 bpm, "
                                     "ble-vectors.md)"),
    "withings_type16": Bound(0, 10_000, "meaning unverified (withings-protocol.md §2.1): the 2014 WS-50 dump holds "
                                        "559-569, so an order of magnitude above any body impedance"),
    "temperature_c": Bound(-40, 85, "issue 11: the industrial operating range of electronic temperature sensors; "
                                    "the WS-50 measures the room it stands in"),
    "co2_ppm": Bound(0, 10_000, "issue 11: indoor CO2 sensors such as the WS-50's (withings-protocol.md §1.5)"),
    "battery_pct": Bound(0, 100, "a percentage"),
}

# Metrics (model.METRIC_UNITS): what a vendor or a formula computed from the readings.
_PART_OF_A_BODY = "a part of a body of at most 400 kg (weight_kg)"
_LEAN_INDEX = "fat-free mass over height²; natural lean bodies stay near 25, so 60 is far above any"
METRIC_BOUNDS: dict[str, Bound] = {
    "bmi": Bound(5, 200, "the thinnest survivable bodies are near BMI 7 and the heaviest recorded near 190"),
    "body_fat_pct": Bound(1, 75, "issue 11; the Zepp app caps body fat at 75 % (body-composition.md §3.2)"),
    "fat_mass_kg": Bound(0, 400, _PART_OF_A_BODY),
    "fat_free_mass_kg": Bound(0, 400, _PART_OF_A_BODY),
    "muscle_mass_kg": Bound(0, 400, _PART_OF_A_BODY),
    "skeletal_muscle_mass_kg": Bound(0, 400, _PART_OF_A_BODY),
    "water_pct": Bound(10, 90, "the Zepp formula clamps water to 35-75 % (body-composition.md §3.3); "
                               "10-90 leaves room for every method and vendor"),
    "bone_mass_kg": Bound(0, 400, _PART_OF_A_BODY),
    "visceral_fat": Bound(0, 60, "a rating of 1-50 in the public formulas (body-composition.md §3.8), "
                                 "with room for a vendor's own scale"),
    "bmr_kcal": Bound(0, 10_000, "the Zepp formula clamps BMR to 500-10,000 kcal (body-composition.md §3.6); "
                                 "Cunningham's 370 + 21.6·FFM (§7.15) at 400 kg gives 9,010"),
    "metabolic_age": Bound(0, 150, "an age in years; the Zepp formula clamps it to 15-80 (§3.7)"),
    "protein_pct": Bound(0, 50, "the Zepp formula clamps protein to 5-32 % (body-composition.md §3.9)"),
    "ffmi": Bound(0, 60, _LEAN_INDEX),
    "ideal_weight_kg": Bound(0, 400, "a weight (weight_kg)"),
    "body_score": Bound(0, 100, "a score of 0-100 (body-composition.md §3.14)"),
    "extracellular_water_kg": Bound(0, 400, _PART_OF_A_BODY),
    "intracellular_water_kg": Bound(0, 400, _PART_OF_A_BODY),
    "body_type": Bound(1, 9, "nine classes, numbered from 1 (body-composition.md §3.12)"),
    "fat_mass_to_ideal_kg": Bound(-400, 400, "signed (to lose or to gain), " + _PART_OF_A_BODY),
    "ffmi_normalised": Bound(0, 60, _LEAN_INDEX),
}

# Values kept under `raw` have no known meaning, so only their size is bounded: the largest integer a
# float holds exactly (raw values are a device's integers or its short decimals), and a count and name
# length far above what a device sends (a Withings group holds at most 64 measures).
MAX_RAW_MAGNITUDE = 2.0**53
MAX_RAW_VALUES = 64
MAX_RAW_NAME = 64

# Times: issue 11. Before 2008 is an unset clock (the Withings WBS01 and every scale we read came later;
# Mi Scales say 1970, ble-scales.md §1.4); a day ahead covers time zones and clock drift.
EARLIEST = datetime(2008, 1, 1, tzinfo=UTC)
FUTURE_TOLERANCE = timedelta(days=1)


class Implausible(ValueError):
    """A reading refused before it was stored; `field` is the quantity, `index` its reading's position."""

    def __init__(self, field: str, problem: str, index: int = 0) -> None:
        super().__init__(problem)
        self.field = field
        self.index = index


def _number(value: float) -> str:
    return f"{value:.6g}"


def value_problem(name: str, value: float, bounds: Mapping[str, Bound], units: Mapping[str, str]) -> str | None:
    """Why `value` cannot be `name` (e.g. "weight_kg 0.001 is below 2 kg"), or None when it can."""
    bound = bounds[name]
    if bound.low <= value <= bound.high:  # every value of every reading passes here: the usual case first
        return None
    if not math.isfinite(value):
        return f"{name} {value} is not a finite number"
    unit = f" {units[name]}" if units[name] else ""
    if value < bound.low:
        return f"{name} {_number(value)} is below {_number(bound.low)}{unit}"
    if value > bound.high:
        return f"{name} {_number(value)} is above {_number(bound.high)}{unit}"
    return None


def _time_problem(name: str, moment: datetime, now: datetime) -> str | None:
    if moment < EARLIEST:
        return f"{name} {iso_utc(moment)} is before {EARLIEST.date().isoformat()}: is the device's clock set?"
    latest = now + FUTURE_TOLERANCE
    if moment > latest:
        return f"{name} {iso_utc(moment)} is after {iso_utc(latest)}, more than a day ahead of this server's clock"
    return None


def reading_problem(reading: Reading, now: datetime) -> tuple[str, str] | None:
    """(field, why) for the first implausible thing in `reading`, or None when all of it is plausible."""
    for name, moment in (("taken_at", reading.taken_at), ("received_at", reading.received_at)):
        if (problem := _time_problem(name, moment, now)) is not None:
            return name, problem
    for name, value in reading.values.items():
        if (problem := value_problem(name, value, READING_BOUNDS, READING_UNITS)) is not None:
            return name, problem
    for name, value in reading.vendor_metrics.items():
        if (problem := value_problem(name, value, METRIC_BOUNDS, METRIC_UNITS)) is not None:
            return name, f"the vendor's {problem}"
    if len(reading.raw) > MAX_RAW_VALUES:
        return "raw", f"raw holds {len(reading.raw)} values, more than {MAX_RAW_VALUES}"
    for name, value in reading.raw.items():
        if len(name) > MAX_RAW_NAME:
            return "raw", f"raw name {name[:MAX_RAW_NAME]!r}... is longer than {MAX_RAW_NAME} characters"
        if not math.isfinite(value):
            return name, f"{name} {value} is not a finite number"
        if abs(value) > MAX_RAW_MAGNITUDE:
            return name, f"{name} {_number(value)} is beyond ±2^53"
    return None


def check(readings: Sequence[Reading], now: datetime) -> None:
    """Raise Implausible for the first reading with an implausible value or time; `now` is the server's."""
    for index, reading in enumerate(readings):
        found = reading_problem(reading, now)
        if found is not None:
            raise Implausible(*found, index=index)
