"""How `compose` picks a method, refuses, passes vendor values through and calibrates."""

from __future__ import annotations

import pytest

from interceptor.composition import Options, Profile, calibration_offset, choose_method, compose

ZEPP_PERSON = Profile("male", 40, 172)
ZEPP_READING = {"weight_kg": 64.7, "impedance_ohm": 451.0}


@pytest.mark.parametrize(
    ("readings", "vendor", "expected"),
    [
        ({"weight_kg": 70, "impedance_high_ohm": 415, "impedance_low_ohm": 460}, None, "s400"),
        ({"weight_kg": 70, "impedance_low_ohm": 460}, None, "s400"),
        ({"weight_kg": 70, "impedance_ohm": 451}, None, "xiaomi"),
        ({"weight_kg": 70, "withings_type16": 560, "heart_rate_bpm": 61}, None, "deurenberg"),
        ({"weight_kg": 70, "withings_type16": 560}, {"body_fat_pct": 20.0}, "vendor"),
        ({"weight_kg": 70}, None, "anthropometric"),
    ],
)
def test_method_follows_the_readings(readings: dict[str, float], vendor: dict[str, float] | None,
                                     expected: str) -> None:
    assert choose_method(readings, vendor) == expected
    assert compose(readings, ZEPP_PERSON, vendor_metrics=vendor).method == expected


def test_missing_impedance_keeps_weight_metrics_and_says_why() -> None:
    composition = compose({"weight_kg": 64.7}, ZEPP_PERSON, method="xiaomi")
    assert set(composition.metrics) == {"bmi", "ideal_weight_kg", "bmr_kcal"}
    assert composition.metrics["bmr_kcal"].method == "mifflin1990"
    assert "no impedance" in composition.refusals["body_fat_pct"]
    assert "fat-free mass" in composition.refusals["ffmi"]


@pytest.mark.parametrize("impedance", [0.0, 65534.0, 150.0, 1600.0, float("nan")])
def test_impedance_outside_the_valid_band_is_refused(impedance: float) -> None:
    composition = compose({"weight_kg": 64.7, "impedance_ohm": impedance}, ZEPP_PERSON)
    assert "body_fat_pct" not in composition.metrics
    assert "200–1500 Ω" in composition.refusals["body_fat_pct"]
    assert composition.metrics["bmi"].value == pytest.approx(21.8699, abs=1e-4)


def test_ages_outside_an_equation_are_refused_per_metric() -> None:
    teen = Profile("male", 12.5, 150)
    # Sun 2003 (12–94) covers a 12-year-old; Janssen (18–86) and Mifflin (19–78) do not.
    composition = compose({"weight_kg": 40, "impedance_ohm": 550}, teen, method="literature")
    assert composition.metrics["body_fat_pct"].method == "sun2003"
    assert "Janssen 2000 was validated on ages 18–86" in composition.refusals["skeletal_muscle_mass_kg"]
    weight_only = compose({"weight_kg": 40}, teen)
    assert "Mifflin–St Jeor 1990 was validated on ages 19–78" in weight_only.refusals["bmr_kcal"]
    assert compose({"weight_kg": 40}, teen, options=Options(bmr_equation="schofield1985")).metrics["bmr_kcal"]


@pytest.mark.parametrize(
    ("sex", "age", "height", "weight", "impedance", "name", "cap"),
    [
        ("male", 20, 140, 30, 200, "water_pct", 73.5),
        ("male", 18, 140, 116, 200, "bmr_kcal", 5000.0),
        ("male", 18, 180, 190, 200, "muscle_mass_kg", 120.0),
        ("male", 18, 190, 190, 200, "bone_mass_kg", 8.0),
        ("female", 80, 140, 130, 1500, "body_fat_pct", 75.0),
    ],
)
def test_zepp_caps_are_shown_as_the_app_shows_them(sex: str, age: float, height: float, weight: float,
                                                   impedance: float, name: str, cap: float) -> None:
    profile = Profile(sex, age, height)  # type: ignore[arg-type]
    composition = compose({"weight_kg": weight, "impedance_ohm": impedance}, profile)
    assert composition.metrics[name].value == cap


def test_bmi_gates() -> None:
    too_light = compose({"weight_kg": 30, "impedance_ohm": 500}, Profile("male", 40, 180))
    assert "unlikely to be this person" in too_light.refusals["body_fat_pct"]
    heavy = {"weight_kg": 200, "impedance_ohm": 500}
    assert compose(heavy, Profile("female", 40, 170)).metrics["body_fat_pct"].method == "xiaomi"
    literature = compose(heavy, Profile("female", 40, 170), method="literature")
    assert "beyond every published equation" in literature.refusals["body_fat_pct"]


def test_s400_bands_too_close_mean_poor_contact() -> None:
    composition = compose({"weight_kg": 70, "impedance_high_ohm": 500, "impedance_low_ohm": 503}, ZEPP_PERSON)
    assert "poor foot contact" in composition.refusals["body_fat_pct"]


def test_s400_vendor_unknowns_are_refused_not_guessed() -> None:
    readings = {"weight_kg": 71.9, "impedance_high_ohm": 414.7, "impedance_low_ohm": 460.3}
    composition = compose(readings, Profile("male", 38, 172))
    for name in ("visceral_fat", "metabolic_age", "body_score"):
        assert "no public" in composition.refusals[name]
    assert composition.metrics["water_pct"].method == "sun2003"
    assert composition.metrics["water_pct"].confidence == "literature"
    assert composition.metrics["skeletal_muscle_mass_kg"].method == "janssen2000"


def test_s400_lone_with_weight_packet_still_gives_fat() -> None:
    """The second packet lost: the with-weight band alone carries the fat model."""
    person = Profile("male", 38, 172)
    both = compose({"weight_kg": 71.9, "impedance_high_ohm": 414.7, "impedance_low_ohm": 460.3}, person)
    lone = compose({"weight_kg": 71.9, "impedance_low_ohm": 460.3}, person)
    assert lone.metrics["body_fat_pct"] == both.metrics["body_fat_pct"]
    without_weight_only = compose({"weight_kg": 71.9, "impedance_high_ohm": 414.7}, person)
    assert "with-weight impedance" in without_weight_only.refusals["body_fat_pct"]


def test_s400_water_compartments_are_labelled_literature() -> None:
    readings = {"weight_kg": 71.9, "impedance_high_ohm": 414.7, "impedance_low_ohm": 460.3}
    full = compose(readings, Profile("male", 38, 172))
    ecw, icw = full.metrics["extracellular_water_kg"], full.metrics["intracellular_water_kg"]
    tbw = full.metrics["water_pct"].value * 71.9 / 100
    assert ecw.value + icw.value == pytest.approx(tbw)
    assert (ecw.method, ecw.confidence) == ("hanai1997", "literature")


def test_withings_type16_is_kept_out_of_the_equations() -> None:
    with_type16 = compose({"weight_kg": 80, "withings_type16": 560}, Profile("male", 30, 180))
    without = compose({"weight_kg": 80}, Profile("male", 30, 180), method="deurenberg")
    assert with_type16.metrics == without.metrics
    fat = with_type16.metrics["body_fat_pct"]
    assert (fat.method, fat.confidence) == ("deurenberg1991", "literature")
    assert fat.value == pytest.approx(20.330, abs=0.01)


def test_vendor_values_pass_through_and_only_the_gaps_are_derived() -> None:
    vendor = {"body_fat_pct": 20.1, "fat_mass_kg": 16.1, "fat_free_mass_kg": 64.0, "muscle_mass_kg": 60.8}
    composition = compose({"weight_kg": 80.1, "withings_type16": 560}, Profile("male", 30, 180), vendor_metrics=vendor)
    for name, value in vendor.items():
        assert composition.metrics[name].value == value
        assert (composition.metrics[name].method, composition.metrics[name].confidence) == ("vendor", "vendor")
    assert composition.metrics["bmr_kcal"].value == pytest.approx(370 + 21.6 * 64.0)
    assert composition.metrics["ffmi"].method == "vendor-derived"  # ours, from the vendor's FFM
    assert "vendor did not report" in composition.refusals["visceral_fat"]


def test_vendor_nonsense_is_refused() -> None:
    composition = compose({"weight_kg": 80}, Profile("male", 30, 180), vendor_metrics={"body_fat_pct": 0.0})
    assert "body_fat_pct" not in composition.metrics
    assert "fat_mass_kg" not in composition.metrics


def test_calibration_from_a_reference_weigh_in() -> None:
    reference = compose(ZEPP_READING, ZEPP_PERSON)
    offset = calibration_offset(19.0, reference)
    assert offset == pytest.approx(19.0 - 17.01331, abs=1e-5)
    calibrated = compose(ZEPP_READING, ZEPP_PERSON, options=Options(fat_offset_pct=offset))
    assert calibrated.metrics["body_fat_pct"].value == pytest.approx(19.0)
    for name in ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "water_pct", "muscle_mass_kg", "ffmi"):
        assert calibrated.metrics[name].confidence == "calibrated", name
        assert calibrated.metrics[name].method == "xiaomi"
    # What does not follow from fat keeps its own label.
    for name in ("bmr_kcal", "bone_mass_kg", "metabolic_age"):
        assert calibrated.metrics[name] == reference.metrics[name]
    with pytest.raises(ValueError, match="offset already"):
        calibration_offset(19.0, calibrated)


def test_calibration_refuses_what_it_cannot_do() -> None:
    with pytest.raises(ValueError, match="no body fat"):
        calibration_offset(20.0, compose({"weight_kg": 64.7}, ZEPP_PERSON))
    with pytest.raises(ValueError, match="profile"):
        calibration_offset(40.0, compose(ZEPP_READING, ZEPP_PERSON))
    with pytest.raises(ValueError, match="between 0 and 75"):
        calibration_offset(0.0, compose(ZEPP_READING, ZEPP_PERSON))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: compose({"impedance_ohm": 451}, ZEPP_PERSON), "weight_kg"),
        (lambda: compose(ZEPP_READING, ZEPP_PERSON, method="tanita"), "unknown method"),
        (lambda: compose(ZEPP_READING, ZEPP_PERSON, vendor_metrics={"fat": 1.0}), "unknown vendor metric"),
        (lambda: Profile("other", 40, 172), "sex"),  # type: ignore[arg-type]
        (lambda: Profile("male", 40, 17.2), "height"),
        (lambda: Options(visceral_fat="new"), "visceral_fat"),  # type: ignore[arg-type]
        (lambda: Options(fat_offset_pct=20), "±15"),
    ],
)
def test_caller_mistakes_raise_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


def test_composition_json_shape() -> None:
    document = compose(ZEPP_READING, ZEPP_PERSON).as_json()
    assert set(document) == {"metrics", "refusals"}
    assert document["metrics"]["body_fat_pct"] == {  # type: ignore[index]
        "value": pytest.approx(17.01331, abs=1e-5), "unit": "%", "method": "xiaomi", "confidence": "vendor",
    }
