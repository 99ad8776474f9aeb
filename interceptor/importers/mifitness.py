"""Mi Fitness (Xiaomi Health) data export: S400 and 8-electrode scale weigh-ins.

The export's `..._hlth_center_fitness_data.csv` has the columns `Uid,Sid,Key,Time,Value,UpdateTime`;
`Time` is unix seconds, `Value` a JSON object; weigh-ins are the rows whose `Key` is `weight`, and
their keys are the cloud's (`weight, bmi, body_fat_rate, moisture_rate, muscle_mass, bone_mass,
basal_metabolism, body_age, bpm, ...`: reference ecosystem.md §4.2, cloud-and-formats.md §1.3). The
keys are not published, so unknown ones are passed over. Other rows (steps, sleep, heart rate) are
not weigh-ins and are counted as ignored. `Sid` names the scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from interceptor.importers.files import cell, columns, csv_rows, first_line
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row
from interceptor.model import utc_from_unix

NAME = "mifitness"
TITLE = "Mi Fitness export"

HEADER = ("Uid", "Sid", "Key", "Time", "Value")
# Keys of a weight record's Value and what each becomes (SmartScaleConnect's mapping: muscle_mass is kg).
VALUES = {"weight": "weight_kg", "bpm": "heart_rate_bpm"}
VENDOR = {
    "bmi": "bmi",
    "body_fat_rate": "body_fat_pct",
    "fat_mass": "fat_mass_kg",
    "fat_free_body": "fat_free_mass_kg",
    "moisture_rate": "water_pct",
    "muscle_mass": "muscle_mass_kg",
    "skeletal_muscle_mass": "skeletal_muscle_mass_kg",
    "bone_mass": "bone_mass_kg",
    "basal_metabolism": "bmr_kcal",
    "body_age": "metabolic_age",
    "visceral_fat": "visceral_fat",
    "protein_rate": "protein_pct",
    "body_score": "body_score",
    "standard_weight": "ideal_weight_kg",
}


class Ignored:
    """A row that is not a weigh-in (steps, sleep): counted, not refused."""

    __slots__ = ()


IGNORED = Ignored()


def looks_like(data: bytes, members: list[str] | None) -> bool:
    if members is not None:
        return False
    header = [part.strip().strip('"') for part in first_line(data).split(",")]
    return all(name in header for name in HEADER)


def _number(found: object) -> float | None:
    if isinstance(found, bool) or not isinstance(found, int | float | str):
        return None
    try:
        value = float(found)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def read(data: bytes, name: str, options: ReadOptions) -> Iterator[Row | Ignored]:
    del options  # times are unix seconds: no zone needed
    rows = csv_rows(data, name, delimiters=",")
    first = next(rows, None)
    if first is None:
        return
    header = columns(first[1])
    if not all(column in header for column in ("Key", "Time", "Value")):
        raise FormatError(f"{name}: not a Mi Fitness export (no Key, Time and Value columns in the header)")
    for line, cells in rows:
        where = f"{name} row {line}"
        if (cell(cells, header.get("Key")) or "").strip() != "weight":
            yield IGNORED
            continue
        try:
            taken_at = utc_from_unix(int((cell(cells, header.get("Time")) or "").strip()))
        except (ValueError, OverflowError, OSError):
            yield Refusal(where, f"unparsable date {(cell(cells, header.get('Time')) or '')[:20]!r}")
            continue
        try:
            content = json.loads(cell(cells, header.get("Value")) or "")
        except ValueError:
            yield Refusal(where, "Value is not JSON")
            continue
        if not isinstance(content, dict):
            yield Refusal(where, "Value is not a JSON object")
            continue
        values: dict[str, float] = {}
        vendor: dict[str, float] = {}
        for key, found in content.items():
            target = values if key in VALUES else vendor if key in VENDOR else None
            parsed = _number(found) if target is not None else None
            if target is not None and parsed is not None and (parsed != 0 or key == "weight"):
                target[VALUES.get(key) or VENDOR[key]] = parsed
        yield Record(where, taken_at, values, vendor, origin=(cell(cells, header.get("Sid")) or "").strip())
