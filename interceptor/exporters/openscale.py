"""openScale CSV that openScale's current importer accepts (reference cloud-and-formats.md §4.1).

`DATE` (ISO `yyyy-MM-dd`) and `TIME` (`HH:mm:ss`) in the household's zone, as openScale keeps device
local time; then the value columns under openScale's `MeasurementTypeKey` names, sorted
alphabetically as openScale writes them; kilograms and percent, openScale's default units; heart
rate a whole number, as openScale keeps it; an empty cell where we have no value. openScale's
MUSCLE is a percentage of the body weight and its LBM is the fat-free mass. One file is one
person's, as openScale imports it.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import TextIO
from zoneinfo import ZoneInfo

from interceptor.model import Measurement

DECIMALS = 2  # openScale shows two decimals; re-imported, a value is within 0.01 of ours
# Columns openScale stores as integers (`InputFieldType.INT`; reference §4.1: HEART_RATE bpm). Its
# importer reads them with toIntOrNull, which gives null for "71.00": the value would be dropped.
INTEGER_COLUMNS = frozenset({"HEART_RATE"})

# openScale key → how to take it from a measurement (None: we have no value).
COLUMNS = {
    "BMI": lambda m: _metric(m, "bmi"),
    "BMR": lambda m: _metric(m, "bmr_kcal"),
    "BODY_FAT": lambda m: _metric(m, "body_fat_pct"),
    "BONE": lambda m: _metric(m, "bone_mass_kg"),
    "HEART_RATE": lambda m: m.readings.get("heart_rate_bpm"),
    "IMPEDANCE": lambda m: m.readings.get("impedance_ohm", m.readings.get("impedance_high_ohm")),
    "IMPEDANCE_LOW": lambda m: m.readings.get("impedance_low_ohm"),
    "LBM": lambda m: _metric(m, "fat_free_mass_kg"),
    "MUSCLE": lambda m: _percent_of_weight(m, "muscle_mass_kg"),
    "PROTEIN": lambda m: _metric(m, "protein_pct"),
    "VISCERAL_FAT": lambda m: _metric(m, "visceral_fat"),
    "WATER": lambda m: _metric(m, "water_pct"),
    "WEIGHT": lambda m: m.readings.get("weight_kg"),
}
HEADER = ["DATE", "TIME", *sorted(COLUMNS)]


def _metric(measurement: Measurement, name: str) -> float | None:
    metric = measurement.metrics.get(name)
    return None if metric is None else metric.value


def _percent_of_weight(measurement: Measurement, name: str) -> float | None:
    mass, weight = _metric(measurement, name), measurement.readings.get("weight_kg")
    return None if mass is None or not weight else mass / weight * 100


def _cell(key: str, value: float | None) -> str:
    """A value as openScale's importer reads it back: a whole number for an integer column (a decimal
    point there makes openScale drop the value), two decimals otherwise; empty for no value."""
    if value is None:
        return ""
    if key in INTEGER_COLUMNS:
        return str(round(value))
    return f"{value:.{DECIMALS}f}"


def write(out: TextIO, measurements: Iterable[Measurement], zone: ZoneInfo) -> int:
    """One row per weigh-in with a weight, as the journal yields them; the number written."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    count = 0
    for measurement in measurements:
        if "weight_kg" not in measurement.readings:
            continue
        local = measurement.taken_at.astimezone(zone)
        writer.writerow([local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S"),
                         *(_cell(key, COLUMNS[key](measurement)) for key in HEADER[2:])])
        count += 1
    return count
