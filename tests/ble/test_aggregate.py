"""Weigh-in aggregation, sans-I/O: frames in with their reception time, readings out."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from interceptor.ble.aggregate import Aggregator
from interceptor.ble.decode import decode_frame
from interceptor.ble.frames import Frame
from interceptor.model import Reading
from tests.ble.vectors import VECTORS, by_id

S400_TIME = 1744250605.0  # the scale timestamp both S400-XB-1/-2 packets carry


def frame_of(vector_id: str, at: float, *, data: str | None = None) -> Frame:
    vector = by_id("service_data", vector_id)
    return Frame(time=at, mac=vector["mac"],
                 service_data={vector["uuid"]: bytes.fromhex(data or vector["data"])})


def feed(aggregator: Aggregator, items: list[tuple[str, float]], now: float = 0.0) -> list[Reading]:
    readings = []
    for vector_id, at in items:
        vector = by_id("service_data", vector_id)
        key = bytes.fromhex(vector["key"]) if "key" in vector else None
        decoded = decode_frame(frame_of(vector_id, at), lambda _mac, key=key: key)
        assert decoded is not None and not decoded.errors
        readings.extend(aggregator.feed(decoded.frame, decoded.samples, now or at))
    return readings


@pytest.mark.parametrize("order", [["S400-XB-1", "S400-XB-2"], ["S400-XB-2", "S400-XB-1"]])
def test_s400_pair_is_one_weigh_in_in_either_order(order: list[str]) -> None:
    aggregator = Aggregator()
    stream = [(order[i % 2], S400_TIME + 1 + i * 0.2) for i in range(30)]  # both packets repeated for 6 s
    readings = feed(aggregator, stream)
    assert len(readings) == 1
    reading = readings[0]
    assert reading.source == "ble" and reading.device_id == "8C:D0:B2:F6:BE:EF"
    assert reading.device_user_id == "1"
    assert reading.device_model == "MJTZC01YM"
    assert reading.values == {"weight_kg": 69.9, "heart_rate_bpm": 92.0,
                              "impedance_low_ohm": 543.2, "impedance_high_ohm": 497.6}
    assert reading.raw["ble_impedance_with_weight_ohm"] == 543.2
    assert reading.raw["ble_impedance_without_weight_ohm"] == 497.6
    assert reading.taken_at == datetime.fromtimestamp(S400_TIME, tz=UTC)
    assert aggregator.pending == 0
    assert aggregator.flush(S400_TIME + 100) == []


def test_s400_lone_weight_packet_times_out() -> None:
    """The second packet lost: after the pair timeout, weight, heart rate and the with-weight band,
    which is the ~50 kHz one (docs/composition.md) and enough for the s400 fat model."""
    aggregator = Aggregator()
    assert feed(aggregator, [("S400-XB-1", S400_TIME + 1)]) == []
    assert aggregator.flush(S400_TIME + 5) == []
    readings = aggregator.flush(S400_TIME + 12)
    assert len(readings) == 1
    assert readings[0].values == {"weight_kg": 69.9, "heart_rate_bpm": 92.0, "impedance_low_ohm": 543.2}
    assert readings[0].raw["ble_impedance_with_weight_ohm"] == 543.2


def test_s400_lone_impedance_packet_stores_nothing() -> None:
    aggregator = Aggregator()
    feed(aggregator, [("S400-XB-2", S400_TIME + 1)])
    assert aggregator.flush(S400_TIME + 12) == []
    assert aggregator.pending == 0


def test_s400_socks_is_final_at_once_and_stepping_off_adds_nothing() -> None:
    aggregator = Aggregator()
    readings = feed(aggregator, [("S400-XB-3", 1779961814.0), ("S400-XB-3", 1779961815.0),
                                 ("S400-XB-4", 1779961816.0)])
    assert len(readings) == 1
    assert readings[0].values == {"weight_kg": 74.7}
    assert readings[0].device_id == "04:AE:47:67:C6:7C"
    assert aggregator.pending == 0


def test_late_frames_from_a_spool_do_not_time_out_early() -> None:
    """Frames an hour old arrive in two batches with a flush tick between: still one pair."""
    aggregator = Aggregator()
    wall = S400_TIME + 3600
    assert feed(aggregator, [("S400-XB-1", S400_TIME + 1)], now=wall) == []
    assert aggregator.flush(wall + 1) == []
    readings = feed(aggregator, [("S400-XB-2", S400_TIME + 1.5)], now=wall + 2)
    assert len(readings) == 1 and "impedance_high_ohm" in readings[0].values


def test_mi_scale_2_session_is_one_weigh_in_with_impedance() -> None:
    aggregator = Aggregator()
    start = 1_700_000_000.0
    no_impedance = "0224b20705040f0201000086 42".replace(" ", "")  # V2-XB-1 before BIA: ctrl1 0x24, imp 0
    frames = [frame_of("V2-XB-2", start)]  # not stabilized yet
    frames += [frame_of("V2-XB-1", start + 1 + i, data=no_impedance) for i in range(3)]
    frames += [frame_of("V2-XB-1", start + 4 + i) for i in range(3)]  # identical frame three times
    frames += [frame_of("V2-XB-3", start + 8)]  # removed
    readings = []
    for frame in frames:
        decoded = decode_frame(frame, lambda _mac: None)
        assert decoded is not None
        readings.extend(aggregator.feed(frame, decoded.samples, frame.time))
    assert len(readings) == 1
    assert readings[0].values == {"weight_kg": 85.15, "impedance_ohm": 428.0}
    assert readings[0].device_user_id is None
    # the scale's clock says 1970: the reception time of the first stabilized frame is used
    assert readings[0].taken_at.timestamp() == start + 1
    assert aggregator.flush(start + 60) == []


def test_mi_scale_2_stepping_off_before_bia_gives_weight_only() -> None:
    aggregator = Aggregator()
    stabilized = "0224b20705040f020100008642"
    readings = [*aggregator.feed(*_decoded(frame_of("V2-XB-1", 100.0, data=stabilized)), 100.0)]
    assert readings == []
    readings += aggregator.feed(*_decoded(frame_of("V2-XB-3", 103.0)), 103.0)
    assert [reading.values for reading in readings] == [{"weight_kg": 85.15}]


def test_mi_scale_2_without_impedance_times_out_on_the_wall_clock() -> None:
    aggregator = Aggregator()
    assert aggregator.feed(*_decoded(frame_of("V2-XB-1", 100.0, data="0224b20705040f020100008642")), 100.0) == []
    assert aggregator.flush(110.0) == []
    assert [reading.values for reading in aggregator.flush(116.0)] == [{"weight_kg": 85.15}]


def test_repeated_weigh_in_later_is_another() -> None:
    aggregator = Aggregator()
    first = feed(aggregator, [("V1-XB-1", 1000.0 + i) for i in range(10)])
    again = feed(aggregator, [("V1-XB-1", 1100.0 + i) for i in range(5)])
    assert len(first) == 1 and len(again) == 1
    assert first[0].identity != again[0].identity


def test_plausible_scale_clock_is_used_in_the_household_zone() -> None:
    """V1-XB-1 says 2021-04-11 16:19:01 local; in Paris (CEST) that is 14:19:01Z."""
    aggregator = Aggregator(zone=ZoneInfo("Europe/Paris"))
    scale = datetime(2021, 4, 11, 14, 19, 1, tzinfo=UTC).timestamp()
    readings = feed(aggregator, [("V1-XB-1", scale + 40)])
    assert readings[0].taken_at.timestamp() == scale
    wrong_zone = Aggregator(zone=ZoneInfo("America/New_York"))
    assert feed(wrong_zone, [("V1-XB-1", scale + 40)])[0].taken_at.timestamp() == scale + 40


def test_s200_one_packet_one_weigh_in() -> None:
    aggregator = Aggregator()
    readings = feed(aggregator, [("S200-XB-1", 1762728843.0), ("S200-XB-1", 1762728844.0)])
    assert len(readings) == 1
    assert readings[0].values == {"weight_kg": 62.25}
    assert readings[0].device_user_id == "1"
    assert readings[0].taken_at.timestamp() == 1762728842


def test_idle_frames_produce_nothing() -> None:
    aggregator = Aggregator()
    assert feed(aggregator, [("IDLE-1", 10.0), ("IDLE-2", 11.0)]) == []
    assert aggregator.pending == 0


def _decoded(frame: Frame) -> tuple[Frame, list]:
    decoded = decode_frame(frame, lambda _mac: None)
    assert decoded is not None and not decoded.errors
    return frame, decoded.samples


SESSIONS = VECTORS["sessions"]


@pytest.mark.parametrize("session", SESSIONS, ids=[session["id"] for session in SESSIONS])
def test_mi_scale_sessions_from_real_frames(session: dict[str, Any]) -> None:
    """Late frames (stabilized and removed: `…02a6…`, `…02a4…`, V1 `a2…`) give the weigh-in only
    when nothing earlier of it was heard; repeats and re-advertised old results give nothing."""
    start = datetime.fromisoformat(session["start"]).timestamp()
    aggregator = Aggregator()
    readings = feed(aggregator, [(vector_id, start + offset) for vector_id, offset in session["frames"]])
    last = start + session["frames"][-1][1]
    readings += aggregator.flush(last + 60)
    assert aggregator.pending == 0
    assert aggregator.flush(last + 3600) == []
    expected = session["expect"]
    assert len(readings) == len(expected)
    for reading, weigh_in in zip(readings, expected, strict=True):
        values = {"weight_kg": weigh_in["weight_kg"]}
        if "impedance_ohm" in weigh_in:
            values["impedance_ohm"] = weigh_in["impedance_ohm"]
        assert reading.values == values
        assert reading.taken_at == datetime.fromisoformat(weigh_in["taken_at"])


def test_a_late_result_waits_for_the_scale_to_settle_then_stands() -> None:
    """Heard only late, the weigh-in comes once LATE_SETTLE_S passed with nobody on the scale, on
    the frame clock or, when no frame comes, on the wall clock."""
    aggregator = Aggregator()
    assert feed(aggregator, [("V2-BM-LATE", 100.0), ("V2-BM-LATE", 101.0)]) == []
    assert aggregator.flush(103.0) == []
    assert [reading.values for reading in aggregator.flush(107.0)] == [{"weight_kg": 105.8, "impedance_ohm": 396.0}]


def test_a_newer_late_result_replaces_an_older_one() -> None:
    """Two results heard only late, one after the other: the first was the waking scale's old one.
    (The second frame is V2-BM-LATE re-timed to HCI-4's clock, 15 minutes later: synthetic.)"""
    aggregator = Aggregator()
    newer = "02a6b207010112101a8c01a852"
    readings = [*aggregator.feed(*_decoded(frame_of("V2-BM-LATE", 100.0)), 100.0)]
    readings += aggregator.feed(*_decoded(frame_of("V2-BM-LATE", 101.0, data=newer)), 101.0)
    readings += aggregator.flush(120.0)
    assert [reading.values for reading in readings] == [{"weight_kg": 105.8, "impedance_ohm": 396.0}]
    assert readings[0].taken_at.timestamp() == 101.0
