"""Zepp Life (Mi Fit) account export: Mi Body Composition Scale 2 and Mi Scale 2 weigh-ins.

The export arrives as a zip mailed after the app's "Export data", WinZip-AES encrypted with the
password in the same e-mail; weigh-ins are in `BODY/BODY_<millis>.csv`, UTF-8 with a BOM:

    time,weight,height,bmi,fatRate,bodyWaterRate,boneMass,metabolism,muscleRate,visceralFat
    2021-02-05 00:30:20+0000,...

Missing values are the literal `null`; `muscleRate` is muscle *mass* in kg, not a percentage; every
family member's rows are in the one file, told apart only by `height` (reference ecosystem.md §4.1,
cloud-and-formats.md §2). A variant with `timestamp` first and an `impedance` column also circulates.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from interceptor.importers import columns as c
from interceptor.importers.files import Archive, Data, columns, csv_rows, first_line, is_zip
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row, Who, moment, number

NAME = "zepp"
TITLE = "Zepp Life export"

TABLE = {
    "weight": c.value("weight_kg"),
    "impedance": c.value("impedance_ohm"),
    "bmi": c.vendor("bmi"),
    "fatRate": c.vendor("body_fat_pct"),
    "bodyWaterRate": c.vendor("water_pct"),
    "boneMass": c.vendor("bone_mass_kg"),
    "metabolism": c.vendor("bmr_kcal"),
    "muscleRate": c.vendor("muscle_mass_kg"),  # kg despite the name (ecosystem.md §4.1)
    "visceralFat": c.vendor("visceral_fat"),
}
TIME_COLUMNS = ("time", "timestamp")
# Every Zepp export header has these (time or timestamp first).
SIGNATURE = {"weight", "height", "fatRate", "bodyWaterRate"}


def is_member(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.startswith("BODY_") and base.endswith(".csv")


def looks_like(data: bytes, members: list[str] | None) -> bool:
    if members is not None:
        return any(is_member(name) for name in members)
    header = {cell.strip().strip('"') for cell in first_line(data).split(",")}
    return header >= SIGNATURE and bool(header & set(TIME_COLUMNS))


def _when(cell: str, options: ReadOptions) -> datetime:
    stripped = cell.strip()
    if stripped.isdigit():  # the `timestamp` variant: unix seconds (or milliseconds)
        seconds = int(stripped)
        return datetime.fromtimestamp(seconds / 1000 if seconds > 100_000_000_000 else seconds, tz=UTC)
    return moment(stripped, options.zone)


def _body(data: bytes, name: str) -> tuple[dict[str, int], int, Iterator[tuple[int, list[str]]]]:
    """The header's columns, the time column, and the rows after the header; FormatError for a file
    that is not a BODY file. ({} and no rows for an empty file.)"""
    rows = csv_rows(data, name, delimiters=",")
    first = next(rows, None)
    if first is None:
        return {}, 0, iter(())
    header = columns(first[1])
    time_index = next((header[key] for key in TIME_COLUMNS if key in header), None)
    if time_index is None or "weight" not in header:
        raise FormatError(f"{name}: not a Zepp Life BODY file (no time and weight columns in the header)")
    return header, time_index, rows


def read_csv(data: bytes, name: str, options: ReadOptions) -> Iterator[Row]:
    header, time_index, rows = _body(data, name)
    layout = c.layout_of(header, TABLE)
    height_index = header.get("height")
    for line, cells in rows:
        where = f"{name} row {line}"
        try:
            taken_at = _when(cells[time_index], options) if time_index < len(cells) else None
        except (ValueError, OverflowError, OSError) as error:
            yield Refusal(where, str(error) if "unparsable" in str(error) else f"unparsable date: {error}")
            continue
        if taken_at is None:
            yield Refusal(where, "no time")
            continue
        try:
            values, vendor = c.mapped(cells, layout)
            height = number(cells[height_index]) if height_index is not None and height_index < len(cells) else None
        except (c.CellError, ValueError) as error:
            yield Refusal(where, str(error))
            continue
        yield Record(where, taken_at, values, vendor, Who(height_cm=height or None))


def _files(data: Data, name: str, options: ReadOptions) -> Iterator[tuple[bytes, str]]:
    """Every BODY file of the export zip (or one BODY csv given alone), with its name."""
    if not is_zip(data):
        yield bytes(data), name
        return
    archive = Archive(data, name, options.password)
    members = archive.matching(is_member)
    if not members:
        raise FormatError(f"{name}: a zip without BODY/BODY_*.csv; not a Zepp Life export")
    for member in members:
        yield archive.read(member), f"{name}: {member}"


def read(data: Data, name: str, options: ReadOptions) -> Iterator[Row]:
    for content, label in _files(data, name, options):
        yield from read_csv(content, label, options)


def count(data: Data, name: str, options: ReadOptions) -> int:
    """The rows `read` yields, or the FormatError it raises, without reading them: a row's cells become
    a record or a refusal, never an error about the file."""
    return sum(sum(1 for _ in _body(content, label)[2]) for content, label in _files(data, name, options))
