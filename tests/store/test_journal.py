"""The journal: durable, deduplicated, all-or-nothing."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interceptor.model import Metric, Reading
from interceptor.store.journal import Journal, JournalError, NewMeasurement

T0 = datetime(2024, 5, 1, 7, 30, tzinfo=UTC)


def reading(weight: float, taken_at: datetime = T0, device: str = "00:24:e4:00:00:01") -> Reading:
    return Reading(source="withings", device_id=device, taken_at=taken_at, received_at=taken_at + timedelta(seconds=20),
                   device_user_id="1", values={"weight_kg": weight})


def item(weight: float, taken_at: datetime = T0, user: str | None = "fed") -> NewMeasurement:
    return NewMeasurement(reading(weight, taken_at), user, {}, {})


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    return Journal(tmp_path / "journal.sqlite")


def test_same_identity_is_stored_once_and_the_first_version_wins(journal: Journal) -> None:
    first, = journal.insert([item(70.0)])
    again, = journal.insert([item(71.0)])
    assert first.created and not again.created
    assert again.measurement.id == first.measurement.id and again.measurement.readings == {"weight_kg": 70.0}
    assert len(journal.measurements()) == 1


def test_a_failing_batch_leaves_nothing(journal: Journal) -> None:
    bad = NewMeasurement(reading(70.0, T0 + timedelta(minutes=1)), "fed",
                         {"bmi": Metric(value=float("nan"), unit="", method="x", confidence="literature")}, {})
    with pytest.raises(ValueError):
        journal.insert([item(69.0), bad])
    assert journal.measurements() == []


def test_filters_and_latest_weight(journal: Journal) -> None:
    journal.insert([item(70.0 + day, T0 + timedelta(days=day), "fed" if day % 2 else "fra") for day in range(6)])
    assert [m.readings["weight_kg"] for m in journal.measurements(user="fed")] == [71.0, 73.0, 75.0]
    assert len(journal.measurements(since=T0 + timedelta(days=4))) == 2
    assert [m.readings["weight_kg"] for m in journal.measurements(limit=2)] == [74.0, 75.0]
    assert journal.latest_weight("fra") == 74.0 and journal.latest_weight("nobody") is None


def test_device_state_keeps_the_last_known_values_and_history(journal: Journal) -> None:
    journal.record_device(device_id="d", source="withings", seen_at=T0, firmware="200", battery_pct=69,
                          manufacturing_id="262151")
    journal.record_device(device_id="d", source="withings", seen_at=T0 + timedelta(hours=1))
    state = journal.device("d")
    assert (state.firmware, state.battery_pct, state.manufacturing_id) == ("200", 69, "262151")
    assert state.first_seen == T0 and state.last_seen == T0 + timedelta(hours=1)
    journal.record_device(device_id="d", source="withings", seen_at=T0 + timedelta(days=1), battery_pct=41)
    assert journal.device("d").battery_pct == 41


def test_the_journal_is_wal_and_fully_synchronous(journal: Journal) -> None:
    assert journal._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert journal._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: fsync on every commit


def test_a_corrupt_file_is_reported_not_crashed_on(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(JournalError, match="cannot open the journal"):
        Journal(path)


def test_a_journal_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    sqlite3.connect(path).execute("PRAGMA user_version=99")
    with pytest.raises(JournalError, match="upgrade first"):
        Journal(path)
