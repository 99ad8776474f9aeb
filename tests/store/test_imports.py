"""Imports through the pipeline: new, merged into the weigh-in the journal has, or known already."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.config import load_config
from interceptor.model import Reading
from interceptor.pipeline import CALIBRATION_KEY, Calibration, Imported, Pipeline, Preparer
from interceptor.store.imports import MergeRule, Nearby
from interceptor.store.journal import Filter, Journal, NewMeasurement, Tx
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


# -- the chunk's merge lookups, made together (`Nearby`), answer as one query per record did --------

# Moments on the half minute, so that records fall exactly on the edge of a rule's window.
HALF_MINUTES = st.integers(-6, 24).map(lambda count: 30 * count)
STORED = st.lists(st.tuples(st.sampled_from(["fra", "fed", None]), st.sampled_from(["zepp-life", "scale"]),
                            HALF_MINUTES, st.one_of(st.none(), st.sampled_from([60.0, 60.05, 60.1, 60.3])),
                            st.sampled_from(["body", "environment"])), max_size=20)
PROBES = st.lists(st.tuples(st.sampled_from(["fra", "fed", None]), st.sampled_from(["zepp-life", "scale"]),
                            st.one_of(HALF_MINUTES, st.floats(-200, 800)),
                            st.one_of(st.none(), st.sampled_from([60.0, 60.02, 60.1, 60.2]))),
                  min_size=1, max_size=20)


def same_weigh_in(db: sqlite3.Connection, rule: MergeRule, *, user: str | None, device_id: str, taken_at: datetime,
                  weight_kg: float | None) -> int | None:
    """The rule as one plain query per record: what `Nearby` must answer, however it indexes."""
    key = rule.key(user, device_id)
    if key is None:
        return None
    column = "user" if rule.same == "person" else "device_id"
    moment = taken_at.timestamp()
    candidates = db.execute(
        f"SELECT id, taken_at, json_extract(readings, '$.weight_kg') FROM measurements"
        f" WHERE {column} = ? AND kind = 'body' AND taken_at BETWEEN ? AND ?",
        (key, moment - rule.window_s, moment + rule.window_s),
    ).fetchall()
    fitting = [(abs(stored_at - moment), identifier) for identifier, stored_at, weight in candidates
               if rule.weight_kg is None or (weight is not None and weight_kg is not None
                                             and abs(weight - weight_kg) <= rule.weight_kg)]
    return min(fitting)[1] if fitting else None


@settings(max_examples=60, deadline=None)
@given(STORED, PROBES, st.sampled_from([FILE_RULE, CLOUD_RULE, MergeRule("person", 0.5, 0.05)]))
def test_nearby_finds_what_a_query_per_record_finds(stored: list, probes: list, rule: MergeRule) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        journal = Journal(Path(scratch) / "journal.sqlite")
        try:
            journal.call(lambda tx: tx.insert([
                NewMeasurement(Reading(source="import", device_id=device, kind=kind, received_at=T0,
                                       taken_at=T0 + timedelta(seconds=at),
                                       values={} if weight is None else {"weight_kg": weight}), user, {}, {})
                for user, device, at, weight, kind in stored]))

            def compare(tx: Tx) -> None:
                moments = [(T0 + timedelta(seconds=at)) for _, _, at, _ in probes]
                nearby = Nearby(tx.db, rule, [moment.timestamp() for moment in moments])
                for (user, device, _, weight), moment in zip(probes, moments, strict=True):
                    found = nearby.same_weigh_in(user=user, device_id=device, moment=moment.timestamp(),
                                                 weight_kg=weight)
                    assert found == same_weigh_in(tx.db, rule, user=user, device_id=device, taken_at=moment,
                                                  weight_kg=weight)

            journal.call(compare)
        finally:
            journal.close()


async def test_a_record_merges_into_a_weigh_in_of_its_own_chunk(pipeline: Pipeline) -> None:
    first = imported(60.0, T0, fat=30.0)
    same = imported(60.05, T0 + timedelta(seconds=100), device="other-export", fat=30.0)
    other_person = imported(60.0, T0 + timedelta(seconds=50), user="fed")
    results = await pipeline.import_readings([first, same, other_person], FILE_RULE)
    assert [result.outcome for result in results] == ["new", "unchanged", "new"]
    assert results[1].measurement_id == results[0].measurement_id != results[2].measurement_id



async def test_a_calibration_set_after_a_record_was_prepared_is_applied_when_it_is_stored(
        pipeline: Pipeline) -> None:
    """A file's records are composed before their writer job (importers.worker): with the person's
    calibration as it was when the import began. One set meanwhile (`interceptor calibrate`) wins."""
    preparer = Preparer(pipeline.config, {"fra": None})
    prepared = preparer.prepare(imported(60.0, T0, fat=30.0))
    assert json.loads(prepared.row.metrics)["body_fat_pct"]["confidence"] == "vendor"
    calibration = Calibration(T0.date(), reference_fat_pct=28.0, offset_pct=-2.0)
    await pipeline.journal.write(lambda tx: tx.meta_set(CALIBRATION_KEY.format(slug="fra"), calibration.to_text()))
    [result] = await pipeline.import_prepared([prepared], FILE_RULE)
    with pipeline.journal.reader() as reader:
        stored = reader.measurement(result.measurement_id)
    assert stored is not None and stored.metrics["body_fat_pct"].value == 28.0
    assert stored.metrics["body_fat_pct"].confidence == "calibrated"
