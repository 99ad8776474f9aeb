"""The plausibility layer: every bound holds at its edges and refuses just past them, with a message
naming the field and the bound; hypothesis shows nothing but `Implausible` ever escapes `check`,
and that whatever passes is finite and inside the table."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor import plausibility
from interceptor.config import load_config
from interceptor.model import METRIC_UNITS, READING_UNITS, Reading
from interceptor.pipeline import Imported, Pipeline
from interceptor.plausibility import (
    EARLIEST,
    FUTURE_TOLERANCE,
    MAX_RAW_VALUES,
    METRIC_BOUNDS,
    READING_BOUNDS,
    Bound,
    Implausible,
)
from interceptor.store.imports import MergeRule
from interceptor.store.journal import Journal
from tests.conftest import HOUSEHOLD_TOML

NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
TAKEN = NOW - timedelta(minutes=5)


def reading(**fields: object) -> Reading:
    base: dict[str, object] = {"source": "test", "device_id": "00:24:e4:06:59:dc", "taken_at": TAKEN,
                               "received_at": NOW, "values": {"weight_kg": 80.0}}
    return Reading.model_validate({**base, **fields})


def refusal(item: Reading) -> tuple[str, str] | None:
    return plausibility.reading_problem(item, NOW)


def test_every_vocabulary_quantity_has_a_bound_that_says_where_it_comes_from() -> None:
    assert set(READING_BOUNDS) == set(READING_UNITS)
    assert set(METRIC_BOUNDS) == set(METRIC_UNITS)
    for bound in [*READING_BOUNDS.values(), *METRIC_BOUNDS.values()]:
        assert bound.low < bound.high and len(bound.why) > 10


def test_the_bounds_issue_11_names() -> None:
    expected = {"weight_kg": (2, 400), "heart_rate_bpm": (20, 250), "temperature_c": (-40, 85),
                "co2_ppm": (0, 10_000)}
    for name, edges in expected.items():
        assert (READING_BOUNDS[name].low, READING_BOUNDS[name].high) == edges
    assert (METRIC_BOUNDS["body_fat_pct"].low, METRIC_BOUNDS["body_fat_pct"].high) == (1, 75)
    assert datetime(2008, 1, 1, tzinfo=UTC) == EARLIEST and timedelta(days=1) == FUTURE_TOLERANCE


def _kind(name: str) -> str:
    return "environment" if name in ("temperature_c", "co2_ppm") else "body"


READINGS = sorted(READING_BOUNDS.items())
METRICS = sorted(METRIC_BOUNDS.items())


@pytest.mark.parametrize(("name", "bound"), READINGS, ids=[name for name, _ in READINGS])
def test_reading_bounds_hold_at_the_edges_and_refuse_past_them(name: str, bound: Bound) -> None:
    unit = f" {READING_UNITS[name]}" if READING_UNITS[name] else ""
    for edge in (bound.low, bound.high):
        assert refusal(reading(kind=_kind(name), values={name: float(edge)})) is None
    below = math.nextafter(bound.low, -math.inf)
    above = math.nextafter(bound.high, math.inf)
    assert refusal(reading(kind=_kind(name), values={name: below})) == (
        name, f"{name} {below:.6g} is below {bound.low:.6g}{unit}")
    assert refusal(reading(kind=_kind(name), values={name: above})) == (
        name, f"{name} {above:.6g} is above {bound.high:.6g}{unit}")


@pytest.mark.parametrize(("name", "bound"), METRICS, ids=[name for name, _ in METRICS])
def test_vendor_metric_bounds_hold_at_the_edges_and_refuse_past_them(name: str, bound: Bound) -> None:
    for edge in (bound.low, bound.high):
        assert refusal(reading(vendor_metrics={name: float(edge)})) is None
    for outside, word in ((bound.low - abs(bound.low) * 1e-9 - 1e-9, "below"),
                          (bound.high + abs(bound.high) * 1e-9 + 1e-9, "above")):
        field, message = refusal(reading(vendor_metrics={name: outside})) or ("", "")
        assert field == name and message.startswith(f"the vendor's {name} ") and f" is {word} " in message


@pytest.mark.parametrize(("value", "message"), [
    (0.001, "weight_kg 0.001 is below 2 kg"),
    (400.001, "weight_kg 400.001 is above 400 kg"),
    (math.nan, "weight_kg nan is not a finite number"),
    (math.inf, "weight_kg inf is not a finite number"),
    (-math.inf, "weight_kg -inf is not a finite number"),
    (-1e300, "weight_kg -1e+300 is below 2 kg"),
])
def test_refusals_name_the_field_and_the_bound(value: float, message: str) -> None:
    assert refusal(reading(values={"weight_kg": value})) == ("weight_kg", message)


def test_the_issue_11_values() -> None:
    assert refusal(reading(vendor_metrics={"body_fat_pct": 1e300})) == (
        "body_fat_pct", "the vendor's body_fat_pct 1e+300 is above 75 %")
    assert refusal(reading(vendor_metrics={"body_fat_pct": -500})) == (
        "body_fat_pct", "the vendor's body_fat_pct -500 is below 1 %")
    assert refusal(reading(kind="environment", values={"temperature_c": -1e300})) == (
        "temperature_c", "temperature_c -1e+300 is below -40 °C")
    assert refusal(reading(kind="environment", values={"co2_ppm": -5})) == ("co2_ppm", "co2_ppm -5 is below 0 ppm")


@pytest.mark.parametrize("field", ["taken_at", "received_at"])
def test_times_from_2008_to_a_day_ahead(field: str) -> None:
    earliest, latest = EARLIEST, NOW + FUTURE_TOLERANCE
    other = {"taken_at": TAKEN} if field == "received_at" else {"received_at": NOW}
    for moment in (earliest, latest):
        assert refusal(reading(**{field: moment, **other})) is None
    too_early = refusal(reading(**{field: earliest - timedelta(microseconds=1), **other}))
    assert too_early is not None and too_early[0] == field
    assert "is before 2008-01-01: is the device's clock set?" in too_early[1]
    too_late = refusal(reading(**{field: latest + timedelta(seconds=1), **other}))
    assert too_late == (field, f"{field} 2026-06-02T12:00:01Z is after 2026-06-02T12:00:00Z, more than a day "
                               "ahead of this server's clock")
    dated_1970 = refusal(reading(**{field: datetime(1970, 1, 1, tzinfo=UTC), **other}))
    assert dated_1970 is not None and "1970-01-01T00:00:00Z is before 2008-01-01" in dated_1970[1]


def test_raw_values_are_only_bounded_in_size() -> None:
    assert refusal(reading(raw={"withings_type_99": -1e15, "ble_object_mode": 1.0})) is None
    assert refusal(reading(raw={"withings_type_99": 2.0**53})) is None
    assert refusal(reading(raw={"withings_type_99": 2.0**53 * 2})) == (
        "withings_type_99", "withings_type_99 1.80144e+16 is beyond ±2^53")
    assert refusal(reading(raw={"withings_type_99": math.nan})) == (
        "withings_type_99", "withings_type_99 nan is not a finite number")
    many = {f"withings_type_{n}": 1.0 for n in range(MAX_RAW_VALUES + 1)}
    assert refusal(reading(raw=many)) == ("raw", f"raw holds {MAX_RAW_VALUES + 1} values, more than {MAX_RAW_VALUES}")
    assert refusal(reading(raw={"x" * 65: 1.0})) is not None


def test_check_names_the_first_implausible_reading_of_a_batch() -> None:
    good, bad = reading(), reading(values={"weight_kg": 80.0, "heart_rate_bpm": 300.0})
    plausibility.check([good, good], NOW)
    with pytest.raises(Implausible) as refused:
        plausibility.check([good, bad, bad], NOW)
    assert (refused.value.index, refused.value.field, str(refused.value)) == (
        1, "heart_rate_bpm", "heart_rate_bpm 300 is above 250 bpm")


async def test_the_pipeline_judges_live_and_imported_records_alike(tmp_path: Path) -> None:
    """Live weigh-ins (ingest_many) are refused whole; imported records (import_readings) that fail the
    same check are skipped with the reason."""
    config_path = tmp_path / "interceptor.toml"
    config_path.write_text(HOUSEHOLD_TOML, encoding="utf-8")
    config = load_config(config_path, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    journal = Journal(config.data_dir / "journal.sqlite")
    pipeline = Pipeline(journal, config, clock=lambda: NOW)
    try:
        good = reading()
        with pytest.raises(Implausible, match="the vendor's body_fat_pct -500 is below 1 %") as refused:
            await pipeline.ingest_many([good, reading(vendor_metrics={"body_fat_pct": -500.0})])
        assert refused.value.index == 1
        with journal.reader() as reader:
            assert reader.count() == 0
        records = [Imported(reading(taken_at=datetime(2099, 1, 1, tzinfo=UTC)), "fra", "b"), Imported(good, "fra", "a")]
        skipped, stored = await pipeline.import_readings(records, MergeRule(same="person", window_s=60, weight_kg=None))
        assert skipped.outcome == "skipped" and skipped.reason is not None
        assert skipped.reason.startswith("taken_at 2099-01-01T00:00:00Z is after")
        assert stored.outcome == "new"  # an import skips the implausible record and keeps the rest
        assert len(await pipeline.ingest_many([good])) == 1  # the clock is the pipeline's: 2026-06-01 here
    finally:
        journal.close()


# ---------------------------------------------------------------------------------------------------
# Hypothesis: any reading the model accepts, with any float anywhere and any time.

floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, 2.0, 400.0, 1e300, -1e300])
moments = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC))
readings = st.builds(
    Reading,
    source=st.just("fuzz"), kind=st.sampled_from(["body", "environment"]), device_id=st.just("fuzz"),
    taken_at=moments | st.just(TAKEN), received_at=moments | st.just(NOW),
    values=st.dictionaries(st.sampled_from(sorted(READING_UNITS)), floats, max_size=4),
    vendor_metrics=st.dictionaries(st.sampled_from(sorted(METRIC_UNITS)), floats, max_size=3),
    raw=st.dictionaries(st.text(max_size=70), floats, max_size=3),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(readings, max_size=3), moments)
def test_only_implausible_escapes_and_what_passes_is_inside_the_table(batch: list[Reading], now: datetime) -> None:
    try:
        plausibility.check(batch, now)
    except Implausible as refused:
        assert 0 <= refused.index < len(batch)
        assert str(refused).startswith((refused.field, f"the vendor's {refused.field}", "raw"))
        return
    for item in batch:
        assert EARLIEST <= item.taken_at <= now + FUTURE_TOLERANCE
        for name, value in item.values.items():
            assert READING_BOUNDS[name].low <= value <= READING_BOUNDS[name].high
        for name, value in item.vendor_metrics.items():
            assert METRIC_BOUNDS[name].low <= value <= METRIC_BOUNDS[name].high
        assert all(math.isfinite(value) and abs(value) <= 2.0**53 for value in item.raw.values())
