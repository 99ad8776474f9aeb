"""openScale CSV, as the current app writes it and as openScale 2.x wrote it.

Current app (reference cloud-and-formats.md §4.1): `DATE` (`yyyy-MM-dd`), `TIME` (`HH:mm[:ss]`), then
`MeasurementTypeKey` names sorted alphabetically (`BMI, BODY_FAT, BONE, ..., WATER, WEIGHT`), matched
case-insensitively; device-local time; each value in its type's unit (defaults: kg and %); an empty
or zero cell is no value; a missing time is noon, as openScale's importer does. openScale 2.x:
`dateTime` (`yyyy-MM-dd HH:mm`, or `dd.MM.yyyy HH:mm`) and lowercase names (`weight, fat, water,
muscle, lbm` or `lbw`, `bone, visceralFat, ...`), always kg. One file holds one person's weigh-ins.

MUSCLE is a percentage of the body weight; it becomes `muscle_mass_kg`. A person whose openScale
showed pounds says so with `--weight-unit lb` (the file does not state its units).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time

from interceptor.importers import columns as c
from interceptor.importers.files import columns, csv_rows, first_line
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row, moment
from interceptor.units import KG_PER_LB

NAME = "openscale"
TITLE = "openScale CSV"

# The current app's keys we map (the rest: tape measures, calories, comments, are not weigh-ins).
CURRENT = {
    "WEIGHT": c.value("weight_kg"),
    "IMPEDANCE": c.value("impedance_ohm"),
    "IMPEDANCE_LOW": c.value("impedance_low_ohm"),
    "HEART_RATE": c.value("heart_rate_bpm"),
    "BMI": c.vendor("bmi"),
    "BODY_FAT": c.vendor("body_fat_pct"),
    "WATER": c.vendor("water_pct"),
    "MUSCLE": c.vendor("muscle_mass_kg"),  # a percentage here: made kg below, with the weight
    "LBM": c.vendor("fat_free_mass_kg"),
    "BONE": c.vendor("bone_mass_kg"),
    "VISCERAL_FAT": c.vendor("visceral_fat"),
    "BMR": c.vendor("bmr_kcal"),
    "PROTEIN": c.vendor("protein_pct"),
}
LEGACY = {
    "weight": c.value("weight_kg"),
    "fat": c.vendor("body_fat_pct"),
    "water": c.vendor("water_pct"),
    "muscle": c.vendor("muscle_mass_kg"),
    "lbm": c.vendor("fat_free_mass_kg"),
    "lbw": c.vendor("fat_free_mass_kg"),
    "bone": c.vendor("bone_mass_kg"),
    "visceralFat": c.vendor("visceral_fat"),
}
MASSES = ("weight_kg", "fat_free_mass_kg", "bone_mass_kg")


def _header(data: bytes) -> set[str]:
    return {cell.strip().strip('"') for cell in first_line(data).replace(";", ",").split(",")}


def looks_like(data: bytes, members: list[str] | None) -> bool:
    if members is not None:
        return False
    header = _header(data)
    upper = {cell.upper() for cell in header}
    return {"DATE", "WEIGHT"} <= upper or {"dateTime", "weight"} <= header


def _finish(values: dict[str, float], vendor: dict[str, float], pounds: bool) -> None:
    """Units the CSV leaves implicit: pounds if the person said so, muscle % to kg, and two
    impedances named by frequency (the larger is the lower frequency)."""
    if pounds:
        for name in MASSES:
            for group in (values, vendor):
                if name in group:
                    group[name] *= KG_PER_LB
    if "muscle_mass_kg" in vendor:
        weight = values.get("weight_kg")
        percent = vendor.pop("muscle_mass_kg")
        if weight is not None:
            vendor["muscle_mass_kg"] = percent * weight / 100
    if "impedance_low_ohm" in values and "impedance_ohm" in values:
        pair = sorted((values.pop("impedance_ohm"), values.pop("impedance_low_ohm")))
        values["impedance_high_ohm"], values["impedance_low_ohm"] = pair


def _day_and_time(day_text: str, time_text: str | None) -> datetime:
    try:
        day = date.fromisoformat(day_text.strip())
    except ValueError:
        raise ValueError(f"unparsable date {day_text.strip()[:40]!r}") from None
    if not time_text or not time_text.strip():
        return datetime.combine(day, time(12))  # openScale's own importer does the same
    try:
        return datetime.combine(day, time.fromisoformat(time_text.strip()))
    except ValueError:
        raise ValueError(f"unparsable time {time_text.strip()[:20]!r}") from None


def read(data: bytes, name: str, options: ReadOptions) -> Iterator[Row]:
    rows = csv_rows(data, name)
    first = next(rows, None)
    if first is None:
        return
    header = columns(first[1])
    upper = {key.upper(): index for key, index in header.items()}
    legacy = "dateTime" in header
    if not legacy and "DATE" not in upper:
        raise FormatError(f"{name}: not an openScale CSV (no DATE or dateTime column in the header)")
    layout = c.layout_of(header, LEGACY) if legacy else c.layout_of(header, CURRENT, fold_case=True)
    pounds = options.weight_unit == "lb" and not legacy
    for line, cells in rows:
        where = f"{name} row {line}"
        try:
            if legacy:
                taken_at = moment(cells[header["dateTime"]], options.zone)
            else:
                time_index = upper.get("TIME")
                naive = _day_and_time(cells[upper["DATE"]],
                                      cells[time_index] if time_index is not None and time_index < len(cells) else None)
                taken_at = naive.replace(tzinfo=options.zone)
        except IndexError:
            yield Refusal(where, "no date")
            continue
        except ValueError as error:
            yield Refusal(where, str(error))
            continue
        try:
            values, vendor = c.mapped(cells, layout)
        except c.CellError as error:
            yield Refusal(where, str(error))
            continue
        _finish(values, vendor, pounds)
        yield Record(where, taken_at, values, vendor)
