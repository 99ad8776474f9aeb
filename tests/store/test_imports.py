"""Imports through the pipeline: new, merged into the weigh-in the journal has, or known already."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interceptor.config import load_config
from interceptor.model import Reading
from interceptor.pipeline import Imported, Pipeline
from interceptor.store.imports import MergeRule
from interceptor.store.journal import Filter, Journal
from tests.conftest import HOUSEHOLD_TOML

T0 = datetime(2024, 5, 1, 5, 30, tzinfo=UTC)
FILE_RULE = MergeRule(same="person", window_s=120, weight_kg=0.1)
CLOUD_RULE = MergeRule(same="device", window_s=60, weight_kg=None)


@pytest.fixture
async def pipeline(tmp_path: Path):
    config_path = tmp_path / "interceptor.toml"
    config_path.write_text(HOUSEHOLD_TOML)
    config = load_config(config_path, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    journal = Journal(config.data_dir / "journal.sqlite")
    pipeline = Pipeline(journal, config)
    await pipeline.load()
    yield pipeline
    journal.close()


def imported(weight: float, at: datetime, *, device: str = "zepp-life", fat: float | None = None,
             user: str | None = "fra") -> Imported:
    return Imported(Reading(source="import", device_id=device, taken_at=at, received_at=at,
                            values={"weight_kg": weight},
                            vendor_metrics={"body_fat_pct": fat} if fat is not None else {}),
                    user, f"test {at:%H:%M}")


async def test_new_then_unchanged_on_a_second_import(pipeline: Pipeline) -> None:
    items = [imported(60.0 + day / 10, T0 + timedelta(days=day), fat=30.0) for day in range(3)]
    first = await pipeline.import_readings(items, FILE_RULE)
    again = await pipeline.import_readings(items, FILE_RULE)
    assert [result.outcome for result in first] == ["new"] * 3
    assert [result.outcome for result in again] == ["unchanged"] * 3
    with pipeline.journal.reader() as reader:
        stored = list(reader.measurements(Filter(user="fra")))
    assert len(stored) == 3 and {m.assignment for m in stored} == {"import"}
    assert stored[0].metrics["body_fat_pct"].method == "vendor"
    assert pipeline.latest_weights["fra"] == 60.2


async def test_a_record_of_a_stored_weigh_in_is_attached_to_it(pipeline: Pipeline) -> None:
    live = Reading(source="withings", device_id="00:24:e4:06:59:dc", taken_at=T0, received_at=T0,
                   values={"weight_kg": 61.0})
    (stored,) = await pipeline.ingest_many([live])
    assert stored.user is None  # no history yet: nobody could be told apart by weight
    await pipeline.assign(stored.id, "fra")
    near = imported(61.05, T0 + timedelta(seconds=90), fat=31.5)
    far_in_weight = imported(61.3, T0 + timedelta(seconds=30), fat=29.0)
    results = await pipeline.import_readings([near, far_in_weight], FILE_RULE)
    assert [result.outcome for result in results] == ["merged", "new"]
    assert results[0].measurement_id == stored.id
    with pipeline.journal.reader() as reader:
        merged = reader.measurement(stored.id)
        assert reader.count() == 2
    assert merged.readings == {"weight_kg": 61.0}  # what the scale sent live wins
    assert merged.metrics["body_fat_pct"].value == 31.5 and merged.assignment == "manual"
    again = await pipeline.import_readings([near], FILE_RULE)
    assert again[0].outcome == "unchanged"


async def test_cloud_records_merge_by_scale_within_a_minute(pipeline: Pipeline) -> None:
    mac = "5C:E5:0C:00:00:01"
    live = Reading(source="ble", device_id=mac, taken_at=T0, received_at=T0,
                   values={"weight_kg": 80.0, "impedance_low_ohm": 520.0})
    (stored,) = await pipeline.ingest_many([live])
    record = imported(80.1, T0 + timedelta(seconds=40), device=mac, fat=22.0, user=None)
    later = imported(80.1, T0 + timedelta(seconds=61), device=mac, fat=22.0, user=None)
    results = await pipeline.import_readings([record, later], CLOUD_RULE)
    assert [(result.outcome, result.measurement_id == stored.id) for result in results] == [
        ("merged", True), ("new", False)]
