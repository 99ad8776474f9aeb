"""Column-mapped CSV rows: which header cell becomes which vocabulary value, in which unit.

Every CSV format we read names its columns; each reader states its own table (header → value) and
this module turns a row into readings and vendor values with it, so a row with a bad cell is refused
with the column it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from interceptor.importers.records import number

Target = Literal["value", "vendor"]


@dataclass(frozen=True)
class Column:
    """`target`: a raw reading (`value`) or a number the vendor's app computed (`vendor`); `factor`
    converts the file's unit to the vocabulary's (pounds to kilograms)."""

    target: Target
    name: str
    factor: float = 1.0


def value(name: str, factor: float = 1.0) -> Column:
    return Column("value", name, factor)


def vendor(name: str, factor: float = 1.0) -> Column:
    return Column("vendor", name, factor)


class CellError(ValueError):
    """A cell that should hold a number does not; the message names the column."""


def mapped(cells: list[str], layout: dict[int, tuple[str, Column]]) -> tuple[dict[str, float], dict[str, float]]:
    """(values, vendor values) of one row; zero and empty cells are "not measured" and left out, except
    a zero weight, kept so that the row is refused as such."""
    values: dict[str, float] = {}
    vendor_values: dict[str, float] = {}
    for index, (header, column) in layout.items():
        if index >= len(cells):
            continue
        try:
            found = number(cells[index])
        except ValueError:
            raise CellError(f"{header} {cells[index].strip()[:20]!r} is not a number") from None
        if found is None or (found == 0 and column.name != "weight_kg"):
            continue
        (values if column.target == "value" else vendor_values)[column.name] = found * column.factor
    return values, vendor_values


def layout_of(header: dict[str, int], table: dict[str, Column], *,
              fold_case: bool = False) -> dict[int, tuple[str, Column]]:
    """The columns of `header` that `table` knows, by position."""
    if fold_case:
        table = {name.lower(): column for name, column in table.items()}
        return {index: (name, table[name.lower()]) for name, index in header.items() if name.lower() in table}
    return {index: (name, table[name]) for name, index in header.items() if name in table}
