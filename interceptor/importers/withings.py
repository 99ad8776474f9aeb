"""Withings "Download my data": `weight.csv`, with the compartments of `other.csv` joined to it.

`weight.csv` (reference ecosystem.md §4.3):
`"Date","Weight (kg)","Fat mass (kg)","Bone mass (kg)","Muscle mass (kg)","Hydration (kg)","Comments"`;
an imperial account writes `(lb)` headers. Hydration is a *mass*; it becomes `water_pct` with the
weight. `other.csv` has `type, date, value, unit, position` rows (visceral fat, BMR, metabolic age,
water compartments, segmental masses); the type names are not published, so they are matched by
words, and segmental rows (with a position) are left out: the vocabulary has no per-limb values. An
`other.csv` row joins the weight row of the same moment; one with no weigh-in in `weight.csv` is
refused. A date without an offset is in the household's zone.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from interceptor.importers import columns as c
from interceptor.importers.files import Archive, Data, cell, columns, csv_rows, first_line, is_zip
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row, moment, number
from interceptor.units import KG_PER_LB

NAME = "withings"
TITLE = "Withings export"

WEIGHT_FILE = "weight.csv"
OTHER_FILE = "other.csv"
QUANTITIES = {
    "Weight": "weight_kg",
    "Fat mass": "fat_mass_kg",
    "Bone mass": "bone_mass_kg",
    "Muscle mass": "muscle_mass_kg",
    "Hydration": "hydration",  # a mass: water_pct below
}
UNITS = {"kg": 1.0, "lb": KG_PER_LB, "lbs": KG_PER_LB}
# other.csv types by the words in their name, and the vocabulary name each becomes; the unit column
# says kg or lb for the masses.
OTHER_TYPES = (
    (("visceral",), "visceral_fat"),
    (("basal", "metabolic", "rate"), "bmr_kcal"),
    (("bmr",), "bmr_kcal"),
    (("metabolic", "age"), "metabolic_age"),
    (("extracellular", "water"), "extracellular_water_kg"),
    (("intracellular", "water"), "intracellular_water_kg"),
    (("extra", "cellular", "water"), "extracellular_water_kg"),
    (("intra", "cellular", "water"), "intracellular_water_kg"),
)
OTHER_MASSES = {"extracellular_water_kg", "intracellular_water_kg"}


def _weight_header(data: bytes) -> set[str]:
    return {part.strip().strip('"') for part in first_line(data).split(",")}


def is_weight_file(data: bytes) -> bool:
    header = _weight_header(data)
    return "Date" in header and bool(header & {"Weight (kg)", "Weight (lb)"})


def is_other_file(data: bytes) -> bool:
    return {"type", "date", "value", "unit"} <= {part.lower() for part in _weight_header(data)}


def looks_like(data: bytes, members: list[str] | None) -> bool:
    if members is not None:
        return any(member.rsplit("/", 1)[-1] == WEIGHT_FILE for member in members)
    return is_weight_file(data)


def _layout(header: dict[str, int]) -> dict[int, tuple[str, c.Column]]:
    layout: dict[int, tuple[str, c.Column]] = {}
    for title, index in header.items():
        base, _, unit = title.partition(" (")
        unit = unit.rstrip(")").strip().lower()
        if base in QUANTITIES and unit in UNITS:
            name = QUANTITIES[base]
            target = "value" if name == "weight_kg" else "vendor"
            layout[index] = (title, c.Column(target, name, UNITS[unit]))
    return layout


def other_name(type_text: str) -> str | None:
    words = type_text.lower().replace("-", " ").replace("_", " ")
    for needed, name in OTHER_TYPES:
        if all(word in words for word in needed):
            return name
    return None


def read_other(data: bytes, name: str, options: ReadOptions) -> Iterator[tuple[str, datetime, str, float] | Refusal]:
    """(row, moment, vocabulary name, value) for each other.csv row we can use; unknown types and
    segmental rows are not weigh-in values and are passed over without a word."""
    rows = csv_rows(data, name, delimiters=",;")
    first = next(rows, None)
    if first is None:
        return
    header = {key.lower(): index for key, index in columns(first[1]).items()}
    for line, cells in rows:
        where = f"{name} row {line}"
        quantity = other_name(cell(cells, header.get("type")) or "")
        position = (cell(cells, header.get("position")) or "").strip()
        if quantity is None or (position and position.lower() not in ("null", "none")):
            continue
        try:
            taken_at = moment(cell(cells, header.get("date")) or "", options.zone)
            found = number(cell(cells, header.get("value")))
        except ValueError as error:
            yield Refusal(where, str(error))
            continue
        if found is None:
            continue
        unit = (cell(cells, header.get("unit")) or "").strip().lower()
        if quantity in OTHER_MASSES:
            found *= UNITS.get(unit, 1.0)
        yield where, taken_at, quantity, found


def read_weight(data: bytes, name: str, options: ReadOptions,
                others: dict[float, dict[str, float]]) -> Iterator[Row]:
    rows = csv_rows(data, name, delimiters=",;")
    first = next(rows, None)
    if first is None:
        return
    header = columns(first[1])
    layout = _layout(header)
    if "Date" not in header or not any(column.name == "weight_kg" for _, column in layout.values()):
        raise FormatError(f"{name}: not a Withings weight.csv (no Date and Weight (kg) or Weight (lb) columns)")
    for line, cells in rows:
        where = f"{name} row {line}"
        try:
            taken_at = moment(cell(cells, header["Date"]) or "", options.zone)
            values, vendor = c.mapped(cells, layout)
        except ValueError as error:
            yield Refusal(where, str(error))
            continue
        hydration = vendor.pop("hydration", None)
        weight = values.get("weight_kg")
        if hydration is not None and weight:
            vendor["water_pct"] = hydration / weight * 100
        vendor.update(others.pop(taken_at.timestamp(), {}))
        yield Record(where, taken_at, values, vendor)


def read(data: Data, name: str, options: ReadOptions, other: tuple[bytes, str] | None = None) -> Iterator[Row]:
    """The export zip, or a `weight.csv` (with an `other.csv` given alongside, if any)."""
    if is_zip(data):
        archive = Archive(data, name, options.password)
        weights = archive.matching(lambda member: member.rsplit("/", 1)[-1] == WEIGHT_FILE)
        if not weights:
            raise FormatError(f"{name}: a zip without weight.csv; not a Withings export")
        weight_name, weight_data = f"{name}: {weights[0]}", archive.read(weights[0])
        others = archive.matching(lambda member: member.rsplit("/", 1)[-1] == OTHER_FILE)
        if others:
            other = (archive.read(others[0]), f"{name}: {others[0]}")
    else:
        weight_name, weight_data = name, bytes(data)
    joined: dict[float, dict[str, float]] = {}
    places: dict[float, str] = {}
    if other is not None:
        for row in read_other(other[0], other[1], options):
            if isinstance(row, Refusal):
                yield row
                continue
            where, taken_at, quantity, found = row
            joined.setdefault(taken_at.timestamp(), {})[quantity] = found
            places.setdefault(taken_at.timestamp(), where)
    yield from read_weight(weight_data, weight_name, options, joined)
    for moment_s in sorted(joined):
        yield Refusal(places[moment_s], "no weigh-in at this time in weight.csv")
