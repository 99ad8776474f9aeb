"""SmartScaleConnect CSV (AlexxIT/SmartScaleConnect `pkg/csv/csv.go`; cloud-and-formats.md §4.2):

    Date,Weight,BMI,BodyFat,BodyWater,BoneMass,MetabolicAge,MuscleMass,PhysiqueRating,ProteinMass,
    VisceralFat,BasalMetabolism,HeartRate,SkeletalMuscleMass,User,Source

`Date` is `2006-01-02 15:04:05` in local time; an empty cell is zero, i.e. no value; columns are
matched by name. Units: kg, %, years, kcal, bpm; PhysiqueRating is the 1–9 body type. `User` names
the person (mapped onto the household by slug or name), `Source` the cloud or scale it came from.
"""

from __future__ import annotations

from collections.abc import Iterator

from interceptor.importers import columns as c
from interceptor.importers.files import cell, columns, csv_rows, first_line
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row, Who, moment

NAME = "smartscaleconnect"
TITLE = "SmartScaleConnect CSV"

TABLE = {
    "Weight": c.value("weight_kg"),
    "HeartRate": c.value("heart_rate_bpm"),
    "BMI": c.vendor("bmi"),
    "BodyFat": c.vendor("body_fat_pct"),
    "BodyWater": c.vendor("water_pct"),
    "BoneMass": c.vendor("bone_mass_kg"),
    "MetabolicAge": c.vendor("metabolic_age"),
    "MuscleMass": c.vendor("muscle_mass_kg"),
    "PhysiqueRating": c.vendor("body_type"),
    "ProteinMass": c.vendor("protein_pct"),  # a mass here: made a percentage below, with the weight
    "VisceralFat": c.vendor("visceral_fat"),
    "BasalMetabolism": c.vendor("bmr_kcal"),
    "SkeletalMuscleMass": c.vendor("skeletal_muscle_mass_kg"),
}
SIGNATURE = {"Date", "Weight", "BodyFat", "PhysiqueRating"}


def looks_like(data: bytes, members: list[str] | None) -> bool:
    if members is not None:
        return False
    return {part.strip().strip('"') for part in first_line(data).split(",")} >= SIGNATURE


def read(data: bytes, name: str, options: ReadOptions) -> Iterator[Row]:
    rows = csv_rows(data, name, delimiters=",")
    first = next(rows, None)
    if first is None:
        return
    header = columns(first[1])
    if "Date" not in header or "Weight" not in header:
        raise FormatError(f"{name}: not a SmartScaleConnect CSV (no Date and Weight columns in the header)")
    layout = c.layout_of(header, TABLE)
    for line, cells in rows:
        where = f"{name} row {line}"
        try:
            taken_at = moment(cell(cells, header.get("Date")) or "", options.zone)
            values, vendor = c.mapped(cells, layout)
        except ValueError as error:
            yield Refusal(where, str(error))
            continue
        protein_kg = vendor.pop("protein_pct", None)
        weight = values.get("weight_kg")
        if protein_kg is not None and weight:
            vendor["protein_pct"] = protein_kg / weight * 100
        user = (cell(cells, header.get("User")) or "").strip()
        yield Record(where, taken_at, values, vendor, Who(name=user or None),
                     origin=(cell(cells, header.get("Source")) or "").strip())
