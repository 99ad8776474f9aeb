"""Physical sanity of every method over its whole input space, checked with hypothesis.

Whatever a method shows must be finite and physically possible (0 < fat % ≤ 75, body parts lighter
than the body, FFM + fat mass = weight), every metric must be either shown or explained, and fat
must not fall when impedance rises at equal weight. The Zepp app's own cap shows 75 % fat above a
raw 63 %, so 75 is allowed for the xiaomi-formula methods (body-composition.md §3.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.composition import Composition, Options, Profile, compose
from interceptor.composition.core import ADULT_AGE_YEARS, BMI_RANGE, IMPEDANCE_RANGE_OHM
from interceptor.model import METRIC_UNITS

MASSES = (
    "fat_mass_kg", "fat_free_mass_kg", "muscle_mass_kg", "skeletal_muscle_mass_kg", "bone_mass_kg",
    "extracellular_water_kg", "intracellular_water_kg",
)
PERCENTAGES = ("water_pct", "protein_pct")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

sexes = st.sampled_from(["male", "female"])
ages = st.floats(min_value=1, max_value=110)
heights = st.floats(min_value=100, max_value=220)
weights = st.floats(min_value=10, max_value=200)
# Beyond the valid band on both sides, so refusals are exercised too.
impedances = st.floats(min_value=50, max_value=3000)
valid_impedances = st.floats(min_value=IMPEDANCE_RANGE_OHM[0], max_value=IMPEDANCE_RANGE_OHM[1])


def assert_physical(composition: Composition, weight: float) -> None:
    metrics = composition.metrics
    assert not set(metrics) & set(composition.refusals)
    assert set(METRIC_UNITS) <= set(metrics) | set(composition.refusals), "a metric is neither shown nor explained"
    for name, metric in metrics.items():
        assert math.isfinite(metric.value), name
        assert metric.unit == METRIC_UNITS[name]
    for name in MASSES:
        if name in metrics:
            assert 0 < metrics[name].value < weight, name
    for name in PERCENTAGES:
        if name in metrics:
            assert 0 < metrics[name].value < 100, name
    if "body_fat_pct" in metrics:
        assert 0 < metrics["body_fat_pct"].value <= 75
        fat_mass, ffm = metrics["fat_mass_kg"].value, metrics["fat_free_mass_kg"].value
        assert fat_mass + ffm == pytest.approx(weight, rel=1e-12)
        assert fat_mass == pytest.approx(weight * metrics["body_fat_pct"].value / 100, rel=1e-12)
    if "fat_free_mass_kg" in metrics:
        assert "ffmi" in metrics
    assert "bmi" in metrics
    assert "ideal_weight_kg" in metrics or "adults (18 and over)" in composition.refusals["ideal_weight_kg"]


def in_domain(profile: Profile, weight: float) -> bool:
    """Where the xiaomi-formula methods promise a body fat (lowest BMI, adults up to the canonical port's 99)."""
    return weight / profile.height_m**2 >= BMI_RANGE[0] and ADULT_AGE_YEARS <= profile.whole_years <= 99


def fat(readings: dict[str, float], profile: Profile, **kwargs: Any) -> float | None:
    metric = compose(readings, profile, **kwargs).metrics.get("body_fat_pct")
    return None if metric is None else metric.value


def assert_fat_rises(readings: Callable[[float], dict[str, float]], x1: float, x2: float, profile: Profile,
                     **kwargs: Any) -> None:
    """Fat at the larger of x1, x2 is not below fat at the smaller (where both are shown)."""
    small, large = sorted((x1, x2))
    fat_small, fat_large = fat(readings(small), profile, **kwargs), fat(readings(large), profile, **kwargs)
    if fat_small is not None and fat_large is not None:
        assert fat_large >= fat_small - 1e-9


@SETTINGS
@given(sexes, ages, heights, weights, impedances, st.sampled_from(["holtek", "legacy"]))
def test_xiaomi_is_physical(sex: str, age: float, height: float, weight: float, z: float, visceral: str) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    options = Options(visceral_fat=visceral)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "impedance_ohm": z}, profile, options=options)
    assert composition.method == "xiaomi"
    assert_physical(composition, weight)
    if in_domain(profile, weight) and IMPEDANCE_RANGE_OHM[0] <= z <= IMPEDANCE_RANGE_OHM[1]:
        assert composition.metrics["body_fat_pct"].confidence == "vendor"
        assert 1 <= composition.metrics["visceral_fat"].value <= 50
        assert 15 <= composition.metrics["metabolic_age"].value <= 80
        assert 0 <= composition.metrics["body_score"].value <= 100
        assert composition.metrics["body_type"].value in range(1, 10)
    else:
        assert "body_fat_pct" in composition.refusals


@SETTINGS
@given(sexes, ages, heights, weights, valid_impedances, valid_impedances)
def test_xiaomi_fat_rises_with_impedance(sex: str, age: float, height: float, weight: float, z1: float,
                                         z2: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    assert_fat_rises(lambda z: {"weight_kg": weight, "impedance_ohm": z}, z1, z2, profile)


@SETTINGS
@given(sexes, ages, heights, weights, impedances, st.floats(min_value=1.0, max_value=1.4), st.booleans())
def test_s400_is_physical(sex: str, age: float, height: float, weight: float, z: float, ratio: float,
                          both: bool) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    readings = {"weight_kg": weight, "impedance_low_ohm": z}  # the with-weight band
    if both:
        readings["impedance_high_ohm"] = z / ratio
    composition = compose(readings, profile, options=Options())
    assert composition.method == "s400"
    assert_physical(composition, weight)
    metrics = composition.metrics
    if "body_fat_pct" in metrics:
        assert profile.whole_years >= ADULT_AGE_YEARS
        ffm = metrics["fat_free_mass_kg"].value
        assert metrics["bmr_kcal"].value == pytest.approx(370 + 21.6 * ffm)
        assert metrics["muscle_mass_kg"].value == pytest.approx(ffm - metrics["bone_mass_kg"].value)
    elif in_domain(profile, weight) and IMPEDANCE_RANGE_OHM[0] <= z <= IMPEDANCE_RANGE_OHM[1] and ratio > 1.01:
        # Shown wherever the Zepp expression is unclamped; refused with the reason elsewhere.
        assert "outside 5–63 %" in composition.refusals["body_fat_pct"]
    for name in ("visceral_fat", "metabolic_age", "body_score"):
        assert name in composition.refusals


@SETTINGS
@given(sexes, ages, heights, weights, valid_impedances, valid_impedances)
def test_s400_fat_rises_with_the_with_weight_impedance(sex: str, age: float, height: float, weight: float,
                                                       z1: float, z2: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    assert_fat_rises(lambda z: {"weight_kg": weight, "impedance_low_ohm": z}, z1, z2, profile)


@SETTINGS
@given(sexes, st.floats(min_value=1, max_value=17.99), heights, weights, valid_impedances,
       st.sampled_from(["xiaomi", "s400"]))
def test_vendor_formulas_show_nothing_for_minors(sex: str, age: float, height: float, weight: float, z: float,
                                                 method: str) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "impedance_ohm": z, "impedance_low_ohm": z}, profile, method=method)
    assert set(composition.metrics) <= {"bmi", "ideal_weight_kg", "bmr_kcal"}
    assert "adults (18 and over)" in composition.refusals["body_fat_pct"]


literature_options = st.builds(
    Options,
    ffm_equation=st.sampled_from(["sun2003", "lee2015", "lukaski1985"]),
    tbw_equation=st.sampled_from(["sun2003", "lukaski_bolonchuk1988", "kushner1992"]),
    ffm_bmr_equation=st.sampled_from(["cunningham1991", "cunningham1980"]),
    bmr_equation=st.sampled_from(["mifflin1990", "harris_benedict1919", "roza_shizgal1984", "schofield1985"]),
)


@SETTINGS
@given(sexes, ages, heights, weights, impedances, literature_options)
def test_literature_is_physical(sex: str, age: float, height: float, weight: float, z: float,
                                options: Options) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "impedance_ohm": z}, profile, method="literature", options=options)
    assert_physical(composition, weight)
    for metric in composition.metrics.values():
        assert metric.confidence in ("literature", "anthropometric")
    water = composition.metrics.get("water_pct")
    if water is not None:
        assert 30 <= water.value <= 75


@SETTINGS
@given(sexes, ages, heights, weights, valid_impedances, valid_impedances,
       st.sampled_from(["sun2003", "lee2015", "lukaski1985"]))
def test_literature_fat_rises_with_impedance(sex: str, age: float, height: float, weight: float, z1: float,
                                             z2: float, equation: str) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    options = Options(ffm_equation=equation)  # type: ignore[arg-type]
    assert_fat_rises(lambda z: {"weight_kg": weight, "impedance_ohm": z}, z1, z2, profile, method="literature",
                     options=options)


@SETTINGS
@given(sexes, ages, heights, weights, st.floats(min_value=0, max_value=2000))
def test_withings_without_vendor_values_is_physical(sex: str, age: float, height: float, weight: float,
                                                    type16: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "withings_type16": type16}, profile)
    assert composition.method == "deurenberg"
    assert_physical(composition, weight)
    if "body_fat_pct" in composition.metrics:
        assert composition.metrics["body_fat_pct"].method == "deurenberg1991"
        assert 7 <= age <= 83


@SETTINGS
@given(sexes, st.floats(min_value=16, max_value=83), heights, weights, weights)
def test_deurenberg_fat_rises_with_weight_at_equal_height(sex: str, age: float, height: float, w1: float,
                                                          w2: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    assert_fat_rises(lambda w: {"weight_kg": w}, w1, w2, profile, method="deurenberg")


# Fat comes as a % or as a mass (a vendor sending both rounds each; see the unit tests), or not at all.
fat_values = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"body_fat_pct": st.floats(min_value=-5, max_value=90)}),
    st.fixed_dictionaries({"fat_mass_kg": st.floats(min_value=0, max_value=100)}),
)
other_vendor_values = st.fixed_dictionaries(
    {},
    optional={
        "muscle_mass_kg": st.floats(min_value=0, max_value=150),
        "bone_mass_kg": st.floats(min_value=0, max_value=10),
        "water_pct": st.floats(min_value=0, max_value=100),
        "bmr_kcal": st.floats(min_value=500, max_value=4000),
    },
)
vendor_values = st.builds(lambda fat, other: {**fat, **other}, fat_values, other_vendor_values)


@SETTINGS
@given(sexes, ages, heights, weights, vendor_values)
def test_vendor_values_pass_through_when_physical(sex: str, age: float, height: float, weight: float,
                                                  values: dict[str, float]) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "withings_type16": 560}, profile, vendor_metrics=values or None)
    assert_physical(composition, weight)
    if values:
        assert composition.method == "vendor"
        for name, value in values.items():
            if name in composition.metrics:
                assert composition.metrics[name].value == value
                assert composition.metrics[name].method == "vendor"


@SETTINGS
@given(sexes, ages, heights, weights)
def test_weight_only_gets_anthropometrics(sex: str, age: float, height: float, weight: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight}, profile)
    assert composition.method == "anthropometric"
    assert_physical(composition, weight)
    assert set(composition.metrics) <= {"bmi", "ideal_weight_kg", "bmr_kcal"}
    if 19 <= age <= 78:
        assert composition.metrics["bmr_kcal"].method == "mifflin1990"
    else:
        assert "19–78" in composition.refusals["bmr_kcal"]


@SETTINGS
@given(sexes, st.floats(min_value=18, max_value=80), heights, weights, valid_impedances, valid_impedances,
       st.floats(min_value=-15, max_value=15), st.sampled_from(["xiaomi", "s400", "literature", "deurenberg"]))
def test_calibration_offsets_fat_and_labels_what_follows(sex: str, age: float, height: float, weight: float,
                                                         z1: float, z2: float, offset: float, method: str) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    readings = {"weight_kg": weight, "impedance_ohm": z1, "impedance_high_ohm": min(z1, z2),
                "impedance_low_ohm": max(z1, z2) * 1.1}
    plain = compose(readings, profile, method=method)
    calibrated = compose(readings, profile, method=method, options=Options(fat_offset_pct=offset))
    assert_physical(calibrated, weight)
    before, after = plain.metrics.get("body_fat_pct"), calibrated.metrics.get("body_fat_pct")
    if before is None:
        assert after is None
        return
    if after is None:
        assert not 0 < before.value + offset <= 75
        return
    assert after.value == pytest.approx(before.value + offset)
    assert after.confidence == ("calibrated" if offset else before.confidence)
    assert calibrated.metrics["fat_free_mass_kg"].confidence == after.confidence
