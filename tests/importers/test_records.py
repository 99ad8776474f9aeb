"""Cloud records → readings: every documented field mapped, vendor values kept apart, junk refused calmly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.importers.cloud.records import CloudRecord, Skip, impedances
from interceptor.importers.xiaomi.devices import bluetooth_scales, parse_bind_key_answer, parse_device_list
from interceptor.importers.xiaomi.history import home_request, plan
from interceptor.importers.xiaomi.records import fitness_record, home_record
from interceptor.importers.zeppcloud.records import zepp_record
from interceptor.model import METRIC_UNITS, READING_UNITS
from tests.importers.histories import V4_RECORD, devices, fitness_history, s400_history, zepp_records

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def record(value: CloudRecord | Skip) -> CloudRecord:
    assert isinstance(value, CloudRecord), value
    return value


def test_the_v4_record_maps_every_field() -> None:
    parsed = record(home_record(V4_RECORD, NOW))
    assert parsed.taken_at == datetime.fromtimestamp(1755927448, UTC)  # createTime, not the inner time
    assert parsed.values == {"weight_kg": 87.8, "heart_rate_bpm": 73.0,
                             "impedance_low_ohm": 384.1, "impedance_high_ohm": 357.5}  # the larger is low frequency
    assert parsed.vendor_metrics == {
        "bmi": 25.7, "body_fat_pct": 22.9, "water_pct": 58.8, "bone_mass_kg": 3.7, "metabolic_age": 55.0,
        "muscle_mass_kg": 63.9, "body_type": 4.0, "protein_pct": 13.2, "visceral_fat": 9.0, "bmr_kcal": 1832.0,
        "body_score": 80.0, "skeletal_muscle_mass_kg": 37.6, "ideal_weight_kg": 73.5, "fat_mass_kg": 20.1,
        "fat_free_mass_kg": 67.6}
    assert parsed.raw == {"xiaomi_pm": 11.6, "xiaomi_whr": 1.3, "xiaomi_slp": 72.9, "xiaomi_bmcp": 4.2,
                          "xiaomi_bwm": 51.5, "xiaomi_from_source": 1.0, "xiaomi_user_height_cm": 172.0}
    assert (parsed.member, parsed.owner, parsed.device, parsed.manual, parsed.unknown) == (
        "Alex", False, "blt.3.abc", False, frozenset())


def test_from_source_2_strings_3_nesting_and_a_hand_typed_weight() -> None:
    by_time = {item["createTime"]: item for item in s400_history()}
    strings = record(home_record(by_time[1_750_000_000_000], NOW))
    assert strings.values == {"weight_kg": 58.35, "impedance_ohm": 612.5}  # heart rate "0": not measured
    assert strings.vendor_metrics == {"bmi": 22.5, "body_fat_pct": 28.1, "water_pct": 51.2, "visceral_fat": 4.0,
                                      "metabolic_age": 38.0}
    assert strings.member == "Franziska" and strings.raw["xiaomi_from_source"] == 2
    nested = record(home_record(by_time[1_752_000_000_000], NOW))
    assert nested.values == {"weight_kg": 70.4, "heart_rate_bpm": 71.0, "impedance_high_ohm": 495.5,
                             "impedance_low_ohm": 540.0}
    assert nested.vendor_metrics == {"bmi": 17.6, "body_fat_pct": 15.9, "muscle_mass_kg": 56.3,
                                     "skeletal_muscle_mass_kg": 33.9, "bmr_kcal": 1790.0}
    assert nested.raw["xiaomi_smi"] == 8.1 and "bodyResData" not in nested.unknown
    typed = record(home_record(by_time[1_754_000_000_000], NOW))
    assert typed.manual and typed.values == {"weight_kg": 71.0}
    assert home_record(by_time[1_753_000_000_000], NOW) == Skip("its data is not a JSON object")
    owner = record(home_record(by_time[1_746_000_000_000], NOW))
    assert owner.owner and owner.member is None


def test_mi_fitness_values() -> None:
    items = fitness_history()
    parsed = record(fitness_record(items[0], NOW))
    assert parsed.taken_at == datetime.fromtimestamp(1_760_000_000, UTC)
    assert parsed.values == {"weight_kg": 74.6, "heart_rate_bpm": 66.0}
    assert parsed.vendor_metrics == {
        "bmi": 24.1, "body_fat_pct": 21.3, "water_pct": 57.0, "bone_mass_kg": 3.1, "metabolic_age": 41.0,
        "muscle_mass_kg": 55.2, "protein_pct": 17.1, "bmr_kcal": 1650.0, "body_score": 82.0, "visceral_fat": 8.0,
        "skeletal_muscle_mass_kg": 32.0, "fat_free_mass_kg": 58.7, "fat_mass_kg": 15.9, "ideal_weight_kg": 70.2,
        "body_type": 5.0}
    assert parsed.raw == {"mifitness_muscle_rate": 74.0} and parsed.device == "blt.3.abc"
    assert fitness_record(items[-1], NOW) == Skip("not a weigh-in (key 'steps')", other=True)


def test_zepp_values_and_members() -> None:
    owner, member = zepp_records("-1", 1_650_000_000, 1, 64.7)[0], zepp_records("101", 1_650_040_000, 1, 58.0)[0]
    parsed = record(zepp_record(owner, {"101": "Fred"}, NOW))
    assert parsed.values == {"weight_kg": 64.7, "impedance_ohm": 450.0}
    assert parsed.vendor_metrics == {
        "bmi": 21.8, "body_fat_pct": 17.01331, "water_pct": 56.92887, "bone_mass_kg": 2.7305484, "bmr_kcal": 1358.0,
        "muscle_mass_kg": 50.961838, "metabolic_age": 25.0, "protein_pct": 21.837502, "ideal_weight_kg": 64.4,
        "visceral_fat": 9.0, "body_score": 89.0, "body_type": 5.0}
    assert parsed.raw == {"zepp_height": 172.0, "zepp_encryptImpedance": 450.0, "zepp_deviceType": 1.0,
                          "zepp_source": 1.0}
    assert parsed.owner and parsed.member is None and parsed.device == "50FB191BB5DC"
    assert record(zepp_record(member, {"101": "Fred"}, NOW)).member == "Fred"
    assert zepp_record({**owner, "weightType": 3}, {}, NOW) == Skip(
        "weightType 3: not a plain weigh-in (Zepp's weights there are unreliable)")


@pytest.mark.parametrize(("first", "second", "expected"), [
    (500, 450, {"impedance_low_ohm": 500.0, "impedance_high_ohm": 450.0}),
    ("450", "500", {"impedance_low_ohm": 500.0, "impedance_high_ohm": 450.0}),
    (0, 430.5, {"impedance_ohm": 430.5}),
    (None, "", {}),
])
def test_impedances_are_named_by_value(first: Any, second: Any, expected: dict[str, float]) -> None:
    assert impedances(first, second) == expected


@pytest.mark.parametrize(("change", "reason"), [
    ({"createTime": 1_000}, "time out of range"),
    ({"createTime": int(NOW.timestamp() + 3 * 86_400) * 1000}, "time out of range"),
    ({"data": json.dumps({"weight": 0})}, "no weight"),
    ({"data": json.dumps({"weight": "heavy"})}, "no weight"),
    ({"data": json.dumps({"weight": 900})}, "weight outside 2-300 kg"),
    ({"data": "[1, 2]"}, "its data is not a JSON object"),
])
def test_implausible_records_are_skipped_with_the_reason(change: dict[str, Any], reason: str) -> None:
    assert home_record({**V4_RECORD, **change}, NOW) == Skip(reason)


def test_device_list_keeps_bluetooth_scales_in_ble_mac_form() -> None:
    found = parse_device_list({"list": [*devices(), {"name": "no did"}, "junk"]})
    scales = bluetooth_scales(found)
    assert [(scale.mac, scale.model) for scale in scales] == [
        ("8C:D0:B2:F6:BE:EF", "yunmai.scales.ms104"), ("D0:7B:6F:27:D7:29", "xiaomi.scales.ms111")]
    assert parse_device_list(None) == [] and parse_device_list({"list": "x"}) == []
    assert parse_bind_key_answer({"beaconkey": "0x07 28974D657A4B60964C1B1677F35F7C"}) == \
        "0728974d657a4b60964c1b1677f35f7c"
    assert parse_bind_key_answer({"beaconkey": "short"}) is None and parse_bind_key_answer(None) is None


def test_which_cloud_keeps_which_history() -> None:
    scales = bluetooth_scales(parse_device_list({"list": devices()}))
    assert [(source.service, source.model) for source in plan(scales, "auto")] == [
        ("home", "xiaomi.scales.ms111"), ("home", "yunmai.scales.ms104")]
    assert [source.service for source in plan([], "auto")] == ["fitness"]
    assert [source.service for source in plan(scales, "fitness")] == ["fitness"]
    eight = parse_device_list({"list": [{"did": "blt.3.e", "model": "yunmai.scales.ms3001", "mac": "AA:BB:CC:DD:EE:FF",
                                         "pid": 6}]})
    assert [source.service for source in plan(eight, "auto")] == ["fitness"]


def test_history_requests_follow_the_reference_per_region() -> None:
    assert home_request("de", "yunmai.scales.ms104", "1234567890", 1755927448000) == (
        "/eco/common/scale/getUserDataByPage",
        {"endTime": 1, "beginTime": 1755927448000, "model": "yunmai.scales.ms104", "uid": "1234567890", "did": 0,
         "accountId": 0},
        {"MIOT-REQUEST-MODEL": "yunmai.scales.ms104"})
    path, data, _ = home_request("cn", "yunmai.scales.ms103", "1234567890", 5)
    assert (path, data) == ("/eco/scale/getData", {"param": {"endTime": 1, "beginTime": 5},
                                                   "model": "yunmai.scales.ms103", "uid": 1234567890, "did": 0})


# -- fuzz: whatever a cloud sends, a parser returns a record in our vocabulary or a reason ----------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**15), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["58.3", "0", "1e309", "NaN", "-4", " 61.2 "]))
fields = st.sampled_from(["weight", "bmi", "bfp", "bodyRes", "bodyRes2", "heartRate", "vfl", "reportFrom", "user",
                          "bodyResData", "body_fat_rate", "bpm", "impedance", "fatRate", "muscleRate", "x"])
objects = st.dictionaries(fields, st.one_of(scalars, st.dictionaries(st.sampled_from(["name", "height"]), scalars)),
                          max_size=8)


def _check(parsed: CloudRecord | Skip) -> None:
    if isinstance(parsed, Skip):
        assert parsed.reason
        return
    assert set(parsed.values) <= set(READING_UNITS) and set(parsed.vendor_metrics) <= set(METRIC_UNITS)
    assert 2 <= parsed.values["weight_kg"] <= 300
    assert all(isinstance(value, float) for value in [*parsed.values.values(), *parsed.raw.values()])


@settings(max_examples=300, deadline=None)
@given(objects, st.one_of(scalars, st.integers(1_400_000_000_000, 1_800_000_000_000)), st.sampled_from([1, 2, 3, "2"]),
       st.booleans())
def test_fuzz_xiaomi_home(data: dict[str, Any], created: Any, source: Any, as_text: bool) -> None:
    if "bodyResData" in data and isinstance(data["bodyResData"], dict):
        data["bodyResData"] = json.dumps(data["bodyResData"])
    item = {**V4_RECORD, "createTime": created, "fromSource": source, "data": json.dumps(data) if as_text else data}
    _check(home_record(item, NOW))


@settings(max_examples=200, deadline=None)
@given(objects, st.one_of(scalars, st.integers(1_400_000_000, 1_800_000_000)), st.sampled_from(["weight", "steps", 1]))
def test_fuzz_mi_fitness(value: dict[str, Any], when: Any, key: Any) -> None:
    _check(fitness_record({"sid": "blt.3.x", "key": key, "time": when, "value": json.dumps(value)}, NOW))


@settings(max_examples=200, deadline=None)
@given(objects, st.one_of(scalars, st.integers(1_400_000_000, 1_800_000_000)), scalars, scalars)
def test_fuzz_zepp(summary: dict[str, Any], when: Any, kind: Any, member: Any) -> None:
    item = {"generatedTime": when, "weightType": kind, "memberId": member, "summary": summary, "deviceId": member}
    _check(zepp_record(item, {"101": "x"}, NOW))


@given(st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                                          max_size=3), max_leaves=10))
def test_fuzz_anything_at_all(item: Any) -> None:
    for parse in (home_record, fitness_record):
        _check(parse(item, NOW))
    _check(zepp_record(item, {}, NOW))
    parse_device_list(item)
    parse_bind_key_answer(item)
