"""`measurements list` output: table, JSON and CSV, written row by row as the journal yields them.

Nothing here holds more than one row: a decade of weigh-ins lists in the memory of one. So the table
has fixed column widths and the CSV a fixed header (every reading and metric name of the vocabulary,
each metric followed by its method), instead of widths and columns measured over all rows first.
JSON is an array with one compact object per line, spliced from the journal's stored JSON.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import TextIO
from zoneinfo import ZoneInfo

from interceptor.model import METRIC_UNITS, READING_UNITS, Measurement
from interceptor.store import measurements as rows
from interceptor.units import weight_text

# Rounding is a display concern (DESIGN.md): the journal and JSON keep full precision; a table and a
# spreadsheet get four decimals, below every scale's resolution.
DECIMALS = 4


def number(value: float) -> str:
    return repr(round(value, DECIMALS))


def write_json(out: TextIO, found: Iterable[tuple]) -> int:
    count = 0
    for row in found:
        out.write(("[\n" if count == 0 else ",\n") + rows.json_text(row))
        count += 1
    out.write("\n]\n" if count else "[]\n")
    return count


CSV_HEADER = [
    "id", "kind", "taken_at", "received_at", "source", "device_id", "device_model", "user", "assigned_by",
    *READING_UNITS, *(column for name in METRIC_UNITS for column in (name, f"{name}_method")),
]


def write_csv(out: TextIO, found: Iterable[tuple], *, header: bool = True) -> int:
    """`header=False` continues a CSV written in pieces (the web page streams it page by page)."""
    writer = csv.writer(out, lineterminator="\n")
    if header:
        writer.writerow(CSV_HEADER)
    count = 0
    for row in found:
        item = rows.measurement(row)
        data = item.as_json()
        metric_cells: list[str] = []
        for name in METRIC_UNITS:
            metric = item.metrics.get(name)
            metric_cells += ["", ""] if metric is None else [number(metric.value), metric.method]
        writer.writerow([
            item.id, item.kind, data["taken_at"], data["received_at"], item.source, item.device_id,
            item.device_model or "", item.user or "", item.assignment,
            *(number(item.readings[name]) if name in item.readings else "" for name in READING_UNITS),
            *metric_cells,
        ])
        count += 1
    return count


_MAC = re.compile(r"(?:[0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}")


def device_text(device_id: str) -> str:
    """A device as tables show it: a MAC in one form whatever its source (Withings scales send it in lower
    case, BLE stacks in upper case; the stored identity keeps what the source sent)."""
    return device_id.upper() if _MAC.fullmatch(device_id) else device_id


class Table:
    """Fixed-width columns, so the first row can be printed before the last one is read."""

    def __init__(self, zone: ZoneInfo, zone_name: str, weight_unit: str, user_width: int) -> None:
        self.zone = zone
        self.weight_unit = weight_unit
        self.widths = [7, 19, max(user_width, 4), 17, 17, 5, 8]
        self.header = self._line(["id", f"taken ({zone_name})", "user", "device", "weight", "bmi", "body fat",
                                  "other"])

    def _line(self, cells: list[str]) -> str:
        fixed = [cells[0].rjust(self.widths[0]), *(cell.ljust(width) for cell, width in
                                                     zip(cells[1:-1], self.widths[1:], strict=True))]
        return "  ".join([*fixed, cells[-1]]).rstrip()

    def line(self, item: Measurement) -> str:
        others = {name: value for name, value in item.readings.items() if name != "weight_kg"}
        bmi = item.metrics.get("bmi")
        fat = item.metrics.get("body_fat_pct")
        return self._line([
            str(item.id),
            item.taken_at.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S"),
            item.user or "-",
            device_text(item.device_id),
            weight_text(item.readings.get("weight_kg"), self.weight_unit),
            "" if bmi is None else f"{bmi.value:.1f}",
            "" if fat is None else f"{fat.value:.1f} %",
            " ".join(f"{name}={number(value)}" for name, value in sorted(others.items())),
        ])

    def write(self, out: TextIO, found: Iterable[tuple]) -> int:
        count = 0
        for row in found:
            if count == 0:
                out.write(self.header + "\n")
            out.write(self.line(rows.measurement(row)) + "\n")
            count += 1
        return count
