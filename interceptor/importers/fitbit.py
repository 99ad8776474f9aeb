"""Fitbit account export (and Google Takeout's Fitbit folder): `weight-YYYY-MM-DD.json` files.

Each file is a JSON array of `{logId, weight, bmi, fat, date "MM/DD/YY", time "HH:MM:SS", source}`
(reference cloud-and-formats.md §4.4). The weight unit follows the account's setting and is not
written down; SmartScaleConnect assumes pounds. Here it is checked instead: weight / BMI is the height
squared, in m² for kilograms and 2.2 times that for pounds, so each file's entries with a BMI say which
unit the file is in, against the person's height. Entries without a BMI take the file's unit (or the
one the person names with `--weight-unit`); with neither, they are refused. `date` and `time` are the
wall clock of the account's zone, taken as the household's.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterator
from datetime import datetime

from interceptor.importers.files import Archive, Data, is_zip
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Row
from interceptor.model import utc_from_unix
from interceptor.units import KG_PER_LB

NAME = "fitbit"
TITLE = "Fitbit export"

MEMBER = re.compile(r"(^|/)weight-\d{4}-\d{2}-\d{2}\.json$")
# A person of unknown height: adults are 1.45–2.05 m, so weight/BMI is 2.1–4.2 m² in kg, 4.6–9.3 in lb.
TYPICAL_HEIGHT_M = 1.7


def looks_like(data: Data, members: list[str] | None) -> bool:
    if members is not None:
        return any(MEMBER.search(name) for name in members)
    head = bytes(data[:4096])
    return head.lstrip().startswith(b"[") and b'"logId"' in head and b'"weight"' in head


def unit_of(entries: list[dict], height_cm: float | None) -> str | None:
    """"kg" or "lb", from the median weight / BMI of the entries that have both; None if none do."""
    ratios = [float(entry["weight"]) / float(entry["bmi"]) for entry in entries
              if _positive(entry.get("weight")) and _positive(entry.get("bmi"))]
    if not ratios:
        return None
    height_m = (height_cm / 100) if height_cm else TYPICAL_HEIGHT_M
    ratio = statistics.median(ratios)
    square = height_m * height_m
    return "kg" if abs(ratio - square) < abs(ratio - square / KG_PER_LB) else "lb"


def _positive(found: object) -> bool:
    return isinstance(found, int | float) and not isinstance(found, bool) and found > 0


def _moment(entry: dict, options: ReadOptions) -> datetime:
    day, clock = entry.get("date"), entry.get("time")
    if isinstance(day, str) and isinstance(clock, str):
        try:
            return datetime.strptime(f"{day} {clock}", "%m/%d/%y %H:%M:%S").replace(tzinfo=options.zone)
        except ValueError:
            raise ValueError(f"unparsable date {day[:12]!r} {clock[:12]!r}") from None
    log_id = entry.get("logId")
    if isinstance(log_id, int) and not isinstance(log_id, bool):
        return utc_from_unix(log_id / 1000)
    raise ValueError("unparsable date: no date and time, and no logId")


def read_json(data: bytes, name: str, options: ReadOptions, unit: str | None) -> tuple[list[Row], str | None]:
    """The rows of one file, and the unit it turned out to be in (for the files after it)."""
    try:
        entries = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise FormatError(f"{name}: not JSON ({error})") from None
    if not isinstance(entries, list):
        raise FormatError(f"{name}: not a Fitbit weight file (a JSON array of weigh-ins)")
    unit = unit_of([entry for entry in entries if isinstance(entry, dict)], options.height_cm) or unit
    unit = unit or options.weight_unit
    rows: list[Row] = []
    for number, entry in enumerate(entries, start=1):
        where = f"{name} entry {number}"
        if not isinstance(entry, dict):
            rows.append(Refusal(where, "not a JSON object"))
            continue
        weight = entry.get("weight")
        if not isinstance(weight, int | float) or isinstance(weight, bool):
            rows.append(Refusal(where, "no weight"))
            continue
        if unit is None:
            rows.append(Refusal(where, "weight unit unknown (no BMI to check it against): pass --weight-unit kg|lb"))
            continue
        try:
            taken_at = _moment(entry, options)
        except (ValueError, OverflowError, OSError) as error:
            rows.append(Refusal(where, str(error)))
            continue
        vendor = {name: float(entry[key]) for key, name in (("bmi", "bmi"), ("fat", "body_fat_pct"))
                  if _positive(entry.get(key))}
        kilograms = float(weight) * (KG_PER_LB if unit == "lb" else 1.0)
        rows.append(Record(where, taken_at, {"weight_kg": kilograms}, vendor,
                           origin=str(entry.get("source") or "")[:40]))
    return rows, unit


def read(data: Data, name: str, options: ReadOptions) -> Iterator[Row]:
    if not is_zip(data):
        yield from read_json(bytes(data), name, options, None)[0]
        return
    archive = Archive(data, name, options.password)
    members = archive.matching(lambda member: bool(MEMBER.search(member)))
    if not members:
        raise FormatError(f"{name}: a zip without weight-YYYY-MM-DD.json files; not a Fitbit export")
    unit: str | None = None
    for member in members:
        rows, unit = read_json(archive.read(member), f"{name}: {member}", options, unit)
        yield from rows
