"""Children: a formula is refused below the ages it was made and checked for, with the reason; it is
never shown at its own floor (a 10-year-old used to get the Zepp formula's 5.0 % body fat)."""

from __future__ import annotations

import pytest

from interceptor.ble.aggregate import Aggregator
from interceptor.ble.decode import decode_frame
from interceptor.ble.frames import Frame
from interceptor.composition import Profile, compose, s400, xiaomi
from tests.ble.vectors import by_id

# What the vendor methods compute from the impedance; BMI and ideal weight need none and stay.
VENDOR_IMPEDANCE_METRICS = {"xiaomi": xiaomi.IMPEDANCE_METRICS, "s400": s400.IMPEDANCE_METRICS}


def weigh_in(*vector_ids: str) -> dict[str, float]:
    """The readings the BLE aggregator makes of real frames (tests/ble/vectors.json)."""
    aggregator = Aggregator()
    readings = []
    for offset, vector_id in enumerate(vector_ids):
        vector = by_id("service_data", vector_id)
        frame = Frame(time=1744250606.0 + offset, mac=vector["mac"],
                      service_data={vector["uuid"]: bytes.fromhex(vector["data"])})
        key = bytes.fromhex(vector["key"]) if "key" in vector else None
        decoded = decode_frame(frame, lambda _mac, key=key: key)
        assert decoded is not None
        readings += aggregator.feed(frame, decoded.samples, frame.time)
    readings += aggregator.flush_all()
    assert len(readings) == 1
    return readings[0].values


S400_WEIGH_IN = weigh_in("S400-XB-1", "S400-XB-2")  # 69.9 kg, 543.2 / 497.6 Ω
MI_SCALE_2_WEIGH_IN = weigh_in("V2-XB-1")  # 85.15 kg, 428 Ω
REAL_WEIGH_INS = [(S400_WEIGH_IN, "s400"), (MI_SCALE_2_WEIGH_IN, "xiaomi")]


@pytest.mark.parametrize(("readings", "method"), REAL_WEIGH_INS, ids=["s400", "xiaomi"])
@pytest.mark.parametrize("age", [10.0, 15.5, 17.9])
def test_vendor_formulas_refuse_minors_with_the_reason(readings: dict[str, float], method: str, age: float) -> None:
    composition = compose(readings, Profile("male", age, 175))
    assert composition.method == method
    for name in VENDOR_IMPEDANCE_METRICS[method]:
        assert name not in composition.metrics, name
        if method == "s400" and name == "water_pct" and age < 12:
            continue  # Sun 2003's own age range is the reason (below)
        assert f"adults (18 and over), not age {int(age)}" in composition.refusals[name], name
    assert "bmi" in composition.metrics
    # The standard weight is Zepp's adult formula too.
    assert "adults (18 and over)" in composition.refusals["ideal_weight_kg"]


@pytest.mark.parametrize(("readings", "method"), REAL_WEIGH_INS, ids=["s400", "xiaomi"])
def test_at_18_the_vendor_formulas_apply(readings: dict[str, float], method: str) -> None:
    fat = compose(readings, Profile("male", 18.0, 175)).metrics["body_fat_pct"]
    assert fat.method == method


CHILD = Profile("male", 10, 140)
CHILD_READINGS = {"weight_kg": 32.0, "impedance_ohm": 600.0, "impedance_low_ohm": 600.0, "impedance_high_ohm": 545.0}


@pytest.mark.parametrize("method", ["xiaomi", "s400", "literature", "deurenberg", "anthropometric"])
def test_a_ten_year_old_gets_no_floor_value_from_any_method(method: str) -> None:
    """The issue's case: only an equation validated on children may give a 10-year-old a body fat."""
    composition = compose(CHILD_READINGS, CHILD, method=method)
    fat = composition.metrics.get("body_fat_pct")
    if fat is None:
        assert composition.refusals["body_fat_pct"]
        return
    # Deurenberg 1991 has a child form, validated on ages 7–15.
    assert (fat.method, fat.confidence) == ("deurenberg1991", "literature")
    assert fat.value == pytest.approx(1.51 * 32 / 1.4**2 - 0.70 * 10 - 3.6 + 1.4)


@pytest.mark.parametrize("method", ["xiaomi", "s400", "literature"])
def test_impedance_methods_say_the_age_is_the_reason(method: str) -> None:
    reason = compose(CHILD_READINGS, CHILD, method=method).refusals["body_fat_pct"]
    assert "age 10" in reason


def test_a_vendor_value_for_a_child_is_the_vendors() -> None:
    """An imported app record is what the app showed, whoever stood on the scale (bodyResData, 40.7 kg)."""
    composition = compose({"weight_kg": 40.7}, Profile("male", 12, 146), vendor_metrics={"body_fat_pct": 12.1})
    assert (composition.metrics["body_fat_pct"].value, composition.metrics["body_fat_pct"].method) == (12.1, "vendor")


def test_the_s400_refusal_is_one_grammatical_sentence() -> None:
    reason = compose(CHILD_READINGS, CHILD, method="s400").refusals["body_fat_pct"]
    assert reason == ("the S400 model is made for and checked on adults (18 and over), not age 10: on a child it"
                      " returns its own limits, not a measurement")


def test_a_child_is_refused_s400_water_by_sun_2003s_own_age_range() -> None:
    """The S400's water is the Sun 2003 equation, validated on ages 12–94: that is why a 10-year-old
    gets none, not the S400 model's adult-only fat formula."""
    composition = compose(CHILD_READINGS, CHILD, method="s400")
    assert "water_pct" not in composition.metrics
    assert composition.refusals["water_pct"] == ("Sun 2003 was validated on ages 12–94 (white and black Americans);"
                                                 " age 10.0 is outside")
