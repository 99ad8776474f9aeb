"""The journal: durable, deduplicated, all-or-nothing; written by one thread in group commits."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interceptor.model import Metric, Reading
from interceptor.store.journal import (
    EVERYTHING,
    FIRST,
    UNASSIGNED,
    Filter,
    Journal,
    JournalError,
    NewMeasurement,
    Tx,
)

T0 = datetime(2024, 5, 1, 7, 30, tzinfo=UTC)


def reading(weight: float, taken_at: datetime = T0, device: str = "00:24:e4:00:00:01") -> Reading:
    return Reading(source="withings", device_id=device, taken_at=taken_at, received_at=taken_at + timedelta(seconds=20),
                   device_user_id="1", values={"weight_kg": weight})


def item(weight: float, taken_at: datetime = T0, user: str | None = "fed",
         device: str = "00:24:e4:00:00:01") -> NewMeasurement:
    return NewMeasurement(reading(weight, taken_at, device), user, {}, {})


@pytest.fixture
def journal(tmp_path: Path):
    journal = Journal(tmp_path / "journal.sqlite")
    yield journal
    journal.close()


def weights(journal: Journal, where: Filter = EVERYTHING, limit: int | None = None) -> list[float]:
    with journal.reader() as reader:
        return [m.readings["weight_kg"] for m in reader.measurements(where, limit=limit)]


async def test_same_identity_is_stored_once_and_the_first_version_wins(journal: Journal) -> None:
    first, = await journal.insert([item(70.0)])
    again, = await journal.insert([item(71.0)])
    assert first.created and not again.created
    assert again.measurement.id == first.measurement.id and again.measurement.readings == {"weight_kg": 70.0}
    assert weights(journal) == [70.0]


async def test_a_failing_job_leaves_nothing_and_does_not_undo_the_others_in_its_group(journal: Journal) -> None:
    bad = NewMeasurement(reading(70.0, T0 + timedelta(minutes=1)), "fed",
                         {"bmi": Metric(value=float("nan"), unit="", method="x", confidence="literature")}, {})
    good = item(72.0, T0 + timedelta(minutes=2))
    results = await asyncio.gather(journal.insert([item(69.0), bad]), journal.insert([good]),
                                   return_exceptions=True)
    assert isinstance(results[0], ValueError)  # NaN is refused: the whole job is undone, 69.0 too
    assert weights(journal) == [72.0]


async def test_filters_stream_in_time_order_with_indexes(journal: Journal) -> None:
    await journal.insert([item(70.0 + day, T0 + timedelta(days=day), "fed" if day % 2 else None,
                               device="a" if day < 3 else "b") for day in range(6)])
    assert weights(journal, Filter(user="fed")) == [71.0, 73.0, 75.0]
    assert weights(journal, Filter(user=UNASSIGNED)) == [70.0, 72.0, 74.0]
    assert weights(journal, Filter(since=T0 + timedelta(days=4))) == [74.0, 75.0]
    assert weights(journal, Filter(device_id="a", until=T0 + timedelta(days=2))) == [70.0, 71.0]
    assert weights(journal, limit=2) == [74.0, 75.0]
    with journal.reader() as reader:
        assert reader.latest_weight("fed") == 75.0 and reader.latest_weight("nobody") is None
        assert reader.count(Filter(user="fed")) == 3
        for query, index in ((Filter(user="fed"), "measurements_by_user"),
                             (Filter(user=UNASSIGNED), "measurements_by_user"),
                             (Filter(since=T0), "measurements_by_time"),
                             (Filter(device_id="a"), "measurements_by_device")):
            clause, parameters = query.where()
            plan = " ".join(str(row) for row in reader.db.execute(
                f"EXPLAIN QUERY PLAN SELECT id FROM measurements {clause} ORDER BY taken_at", parameters))
            assert index in plan, plan



async def test_a_history_is_walked_page_by_page_each_weigh_in_once_from_the_index(journal: Journal) -> None:
    # Two scales weigh in at each moment, so pages end between equal times; one is somebody else's.
    await journal.insert([item(60.0 + index, T0 + timedelta(minutes=index // 2), "fed" if index != 3 else "ann",
                               device=f"scale-{index % 2}") for index in range(7)])
    walked, after = [], FIRST
    with journal.reader() as reader:
        while page := reader.page(Filter(user="fed", kind="body"), after=after, limit=2):
            walked.extend(identifier for _, identifier in page)
            after = page[-1]
        assert [m.readings["weight_kg"] for m in reader.measurements_by_id(walked).values()] == \
            [60.0, 61.0, 62.0, 64.0, 65.0, 66.0]
        assert len(set(walked)) == len(walked) == 6
        clause, parameters = Filter(user="fed", kind="body").where()
        plan = " ".join(str(row) for row in reader.db.execute(
            f"EXPLAIN QUERY PLAN SELECT taken_at, id FROM measurements {clause} AND (taken_at, id) > (?, ?)"
            " ORDER BY taken_at, id LIMIT 2", [*parameters, *FIRST]))
        assert "measurements_by_user" in plan and "TEMP B-TREE" not in plan, plan

async def test_device_state_keeps_the_last_known_values_and_history(journal: Journal) -> None:
    def record(at: datetime, **fields: object) -> None:
        journal.call(lambda tx: tx.record_device(device_id="d", source="withings", seen_at=at, **fields))

    record(T0, firmware="200", battery_pct=69, manufacturing_id="262151")
    record(T0 + timedelta(hours=1))
    with journal.reader() as reader:
        state = reader.device("d")
    assert (state.firmware, state.battery_pct, state.manufacturing_id) == ("200", 69, "262151")
    assert state.first_seen == T0 and state.last_seen == T0 + timedelta(hours=1)
    record(T0 + timedelta(days=1), battery_pct=41)
    with journal.reader() as reader:
        assert reader.device("d").battery_pct == 41
        assert [report.battery_pct for report in reader.device_reports()] == [69, 41]


def test_devices_noted_during_a_job_end_as_they_would_one_update_after_another(tmp_path: Path) -> None:
    """An import notes its readings' devices and writes each once; the rows are the same as one update per
    reading would leave, whatever order the moments and models came in, for devices new and known."""

    def seen(device: str, model: str | None, minutes: int, source: str = "import") -> NewMeasurement:
        at = T0 + timedelta(minutes=minutes)
        return NewMeasurement(Reading(source=source, device_id=device, device_model=model, taken_at=at,
                                      received_at=at, values={"weight_kg": 70.0 + minutes}), None, {}, {})

    batch = [seen("a", None, 5), seen("a", "Zepp", -3), seen("b", "S400", 9, "withings"), seen("a", None, 20),
             seen("a", "Mi Scale", 1), seen("b", None, 2), seen("c", None, 4)]
    states = []
    for noted in (False, True):
        journal = Journal(tmp_path / f"noted-{noted}.sqlite")
        journal.call(lambda tx: tx.record_device(device_id="b", source="ble", seen_at=T0, model="old",
                                                 firmware="7"))

        def job(tx: Tx, noted: bool = noted) -> None:
            if not noted:
                for one in batch:
                    tx.insert([one])
                return
            with tx.devices_noted():
                for one in batch:
                    tx.insert([one])

        journal.call(job)
        with journal.reader() as reader:
            states.append(reader.devices())
        journal.close()
    assert states[0] == states[1]
    by_id = {state.device_id: state for state in states[1]}
    assert (by_id["a"].model, by_id["a"].first_seen, by_id["a"].last_seen) == (
        "Mi Scale", T0 - timedelta(minutes=3), T0 + timedelta(minutes=20))
    assert (by_id["b"].source, by_id["b"].model, by_id["b"].firmware) == ("ble", "S400", "7")


def test_durable_jobs_commit_with_fsync_and_bookkeeping_without(journal: Journal) -> None:
    def synchronous(tx: Tx) -> int:
        return int(tx.db.execute("PRAGMA synchronous").fetchone()[0])

    assert journal.call(lambda tx: tx.db.execute("PRAGMA journal_mode").fetchone()[0]) == "wal"
    assert journal.call(synchronous) == 2  # FULL: the WAL is fsynced before a weigh-in is acknowledged
    assert journal.call(synchronous, durable=False) == 1  # NORMAL


async def test_weigh_ins_queued_together_share_one_commit(journal: Journal) -> None:
    release = threading.Event()
    blocker = journal._writer.submit(lambda tx: release.wait(5))
    await asyncio.sleep(0.05)  # the writer thread is now inside the blocking job
    commits = journal._writer.commits
    writes = [asyncio.ensure_future(journal.insert([item(60.0 + index, T0 + timedelta(minutes=index))]))
              for index in range(40)]
    await asyncio.sleep(0.05)
    assert not any(write.done() for write in writes)  # nothing is acknowledged before its commit
    release.set()
    await asyncio.gather(*writes)
    assert blocker.result() is True
    assert journal._writer.commits - commits == 2  # the blocking job's group, then one for all forty
    assert len(weights(journal)) == 40


def _insert_then_fail(weight: float) -> Callable[[Tx], None]:
    def job(tx: Tx) -> None:
        tx.insert([item(weight, T0 + timedelta(hours=weight))])
        raise ValueError(f"job {weight} fails after writing")

    return job


async def test_a_failing_job_loses_only_its_own_writes_and_its_caller_gets_the_error(journal: Journal) -> None:
    with pytest.raises(ValueError, match=r"job 50\.0 fails"):  # alone in its group
        await journal.write(_insert_then_fail(50.0))
    assert weights(journal) == []

    release = threading.Event()
    blocker = journal._writer.submit(lambda tx: release.wait(5))
    await asyncio.sleep(0.05)  # the next jobs queue up behind it and share one group
    jobs = [asyncio.ensure_future(journal.insert([item(60.0, T0)])),
            asyncio.ensure_future(journal.write(_insert_then_fail(70.0))),
            asyncio.ensure_future(journal.insert([item(80.0, T0 + timedelta(days=1))]))]
    release.set()
    first, failed, last = await asyncio.gather(*jobs, return_exceptions=True)
    assert isinstance(failed, ValueError) and "job 70.0 fails" in str(failed)
    assert isinstance(first, list) and isinstance(last, list) and first[0].created and last[0].created
    assert blocker.result() is True
    assert weights(journal) == [60.0, 80.0]


async def test_the_event_loop_runs_while_a_write_is_blocked(journal: Journal) -> None:
    release = threading.Event()
    blocked = asyncio.ensure_future(journal.write(lambda tx: release.wait(5)))
    started = asyncio.get_running_loop().time()
    await asyncio.sleep(0.1)  # this loop is free, though the journal's writer is stuck
    assert asyncio.get_running_loop().time() - started < 0.5 and not blocked.done()
    with journal.reader() as reader:  # and readers are not blocked by the writer
        assert reader.count() == 0
    release.set()
    assert await blocked is True


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
