"""Hypothesis: whatever bytes an export file holds (garbage, a truncated or bit-flipped zip, text in the
wrong encoding), detecting and reading it either yields weigh-ins and refusals, each naming its row,
or raises FormatError naming the file; never anything else."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.importers import formats, run
from interceptor.importers.mifitness import Ignored
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal
from tests.conftest import FIXTURES

NAME = "export.bin"
SEEDS = sorted(path.read_bytes() for path in (FIXTURES / "imports").iterdir() if path.suffix in (".csv", ".zip"))
OPTIONS = ReadOptions(ZoneInfo("Europe/Paris"), password=b"zepp-sample", height_cm=180)
NOW = datetime(2026, 1, 1, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _counted(call: Callable[[], int]) -> int | str:
    try:
        return call()
    except FormatError as error:
        return str(error)


def read_as(data: bytes, format_name: str | None) -> None:
    """Read `data` as detected (or as `format_name`); every outcome must be one a user can act on. The
    check before an import (which may count rows without mapping them) finds as many rows as reading
    them does, or the same FormatError."""
    try:
        for source in run.sources([(NAME, data)], format_name):
            assert _counted(lambda source=source: run.check(source, OPTIONS, NOW)) == _counted(
                lambda source=source: sum(1 for _ in run.rows(source, OPTIONS, NOW)))
            for row in run.rows(source, OPTIONS, NOW):
                assert isinstance(row, Record | Refusal | Ignored)
                if isinstance(row, Refusal):
                    assert row.where.startswith(NAME) and row.reason
                if isinstance(row, Record):
                    assert 2 <= row.values["weight_kg"] <= 400 and row.taken_at.tzinfo is not None
    except FormatError as error:
        assert str(error).startswith(NAME), str(error)


@FUZZ
@given(st.binary(max_size=2048), st.sampled_from([None, *formats.NAMES]))
def test_arbitrary_bytes_are_read_or_refused_naming_the_file(data: bytes, format_name: str | None) -> None:
    read_as(data, format_name)


@FUZZ
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 1 << 12), st.integers(0, 255)), max_size=8),
       st.integers(0, 1 << 12))
def test_damaged_and_truncated_exports_are_read_or_refused(seed: bytes, flips: list[tuple[int, int]],
                                                           cut: int) -> None:
    data = bytearray(seed[:cut] if cut < len(seed) else seed)
    for offset, value in flips:
        if data:
            data[offset % len(data)] = value
    read_as(bytes(data), None)


@FUZZ
@given(st.sampled_from([seed for seed in SEEDS if not seed.startswith(b"PK")]),
       st.sampled_from(["utf-16", "utf-16-le", "cp1252", "latin-1", "utf-32"]))
def test_text_exports_in_another_encoding_are_read_or_refused(seed: bytes, encoding: str) -> None:
    read_as(seed.decode("utf-8-sig").encode(encoding, errors="replace"), None)


@FUZZ
@given(st.sampled_from([seed for seed in SEEDS if not seed.startswith(b"PK")]),
       st.lists(st.text(max_size=12), min_size=1, max_size=6))
def test_rows_of_random_cells_are_refused_row_by_row(seed: bytes, cells: list[str]) -> None:
    header = seed.decode("utf-8-sig").splitlines()[0]
    read_as(f"{header}\n{','.join(cells)}\n".encode(), None)


ZEPP_HEADERS = ["time,weight,height,bmi,fatRate,bodyWaterRate,boneMass,metabolism,muscleRate,visceralFat",
                "timestamp,weight,height,bmi,fatRate,bodyWaterRate,boneMass,metabolism,muscleRate,visceralFat,impedance",
                "time,height,fatRate,bodyWaterRate"]
ZEPP_CELLS = st.sampled_from(["2021-02-05 00:30:20+0000", "1612485020", "null", "", "70.5", "0", "165", "abc", '"',
                              '"a,b"', "-3", "1e400", "2021-13-45 99:99:99"]) | st.text(max_size=6)


@FUZZ
@given(st.sampled_from(ZEPP_HEADERS), st.lists(st.lists(ZEPP_CELLS, max_size=12), max_size=6),
       st.sampled_from(["\n", "\r\n"]), st.booleans())
def test_zepp_body_files_are_counted_as_they_are_read(header: str, rows: list[list[str]], newline: str,
                                                      bom: bool) -> None:
    text = newline.join([header, *(",".join(row) for row in rows)]) + newline
    read_as(("\ufeff" if bom else "").encode() + text.encode(), "zepp")
