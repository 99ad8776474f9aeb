"""Every vector of composition-vectors.md, from the transcription in vectors.json, at its tolerance."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from interceptor.composition import Options, Profile, compose, xiaomi
from interceptor.composition import anthropometric as anthro
from interceptor.composition import literature as lit

VECTORS: dict[str, Any] = json.loads((Path(__file__).parent / "vectors.json").read_text())


def _rows(section: str) -> list[dict[str, Any]]:
    table = VECTORS[section]
    return [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]


ZEPP = _rows("zepp")
ZEPP_TOL = VECTORS["zepp"]["tolerance"]


def _profile(row: dict[str, Any]) -> Profile:
    return Profile(row["sex"], row["age"], row["height_cm"])


def _values(row: dict[str, Any], **options: Any) -> dict[str, float]:
    composition = compose(
        {"weight_kg": row["weight_kg"], "impedance_ohm": row["impedance"]},
        _profile(row),
        options=Options(**options),
    )
    return {name: metric.value for name, metric in composition.metrics.items()}


@pytest.mark.parametrize("row", ZEPP, ids=[row["id"] for row in ZEPP])
def test_zepp_formulas_match_export2garmin(row: dict[str, Any]) -> None:
    values = _values(row, visceral_fat="legacy")
    expected = {
        "bmi": row["bmi"],
        "body_fat_pct": row["fat_pct"],
        "water_pct": row["water_pct"],
        "bone_mass_kg": row["bone_kg"],
        "muscle_mass_kg": row["muscle_kg"],
        "bmr_kcal": row["bmr"],
        "visceral_fat": row["visceral_legacy"],
        "metabolic_age": row["metabolic_age"],
        "protein_pct": row["protein_pct"],
        "ideal_weight_kg": row["ideal_kg"],
        "body_score": row["body_score"],
    }
    for name, value in expected.items():
        # The file prints BMR to 0.01 kcal, so half of that is the finest tolerance it supports.
        tolerance = 0.005 if name == "bmr_kcal" else ZEPP_TOL
        assert values[name] == pytest.approx(value, abs=tolerance), name
    assert values["body_type"] == row["body_type"]
    to_ideal = values["fat_mass_to_ideal_kg"]
    text = f"to_lose:{to_ideal:.1f}" if to_ideal >= 0 else f"to_gain:{-to_ideal:.1f}"
    assert text == row["fat_mass_to_ideal"]
    lbm = xiaomi.lbm_coefficient(row["height_cm"], row["weight_kg"], row["impedance"], row["age"])
    assert lbm == pytest.approx(row["lbm_coefficient"], abs=ZEPP_TOL)


@pytest.mark.parametrize("row", ZEPP, ids=[row["id"] for row in ZEPP])
def test_zepp_holtek_visceral_fat_is_the_default(row: dict[str, Any]) -> None:
    assert _values(row)["visceral_fat"] == pytest.approx(row["visceral_holtek"], abs=ZEPP_TOL)


def test_zepp_cloud_record_is_reproduced() -> None:
    """Inputs partly inferred: the cloud record publishes neither sex nor age (male/40 back-solved)."""
    record = VECTORS["zepp_cloud"]
    values = _values(record["inputs"])
    for name, value in record["continuous"].items():
        assert values[name] == pytest.approx(value, abs=1e-3), name
    for name, value in record["truncated"].items():
        assert math.floor(values[name]) == value, name
    assert math.floor(values["bmi"] * 10) / 10 == record["bmi_one_decimal_truncated"]
    legacy = _values(record["inputs"], visceral_fat="legacy")
    assert math.floor(legacy["visceral_fat"]) == record["truncated"]["visceral_fat"]


def test_zepp_cloud_body_score_is_not_reproduced_and_says_so() -> None:
    record = VECTORS["zepp_cloud"]
    inputs = record["inputs"]
    composition = compose(
        {"weight_kg": inputs["weight_kg"], "impedance_ohm": inputs["impedance"]},
        Profile(inputs["sex"], inputs["age"], inputs["height_cm"]),
    )
    score = composition.metrics["body_score"]
    assert score.confidence == "vendor-approximate"
    assert score.value != record["not_reproduced"]["body_score"]


OPENSCALE_MI = _rows("openscale_miscalelib")


@pytest.mark.parametrize("row", OPENSCALE_MI, ids=["m30", "f28", "m45"])
def test_openscale_miscalelib(row: dict[str, Any]) -> None:
    tolerance = VECTORS["openscale_miscalelib"]["tolerance"]
    sex = "male" if row["sex"] == 1 else "female"
    values = _values({**row, "sex": sex})
    assert values["bmi"] == pytest.approx(row["bmi"], abs=tolerance)
    assert values["body_fat_pct"] == pytest.approx(row["fat_pct"], abs=tolerance)
    assert values["bone_mass_kg"] == pytest.approx(row["bone_kg"], abs=tolerance)
    assert values["muscle_mass_kg"] == pytest.approx(row["lbm_kg"], abs=tolerance)
    assert values["water_pct"] == pytest.approx(row["water_pct"], abs=tolerance)
    smm_pct = 100 * values["skeletal_muscle_mass_kg"] / row["weight_kg"]
    assert smm_pct == pytest.approx(row["muscle_pct"], abs=tolerance)
    raw = xiaomi.visceral_fat_legacy(sex, row["age"], row["height_cm"], row["weight_kg"])
    assert raw == pytest.approx(row["visceral_unclamped"], abs=tolerance)


def test_openscale_bodymiscalelib_shared_pieces() -> None:
    section = VECTORS["openscale_bodymiscalelib"]
    inputs, expected, tolerance = section["inputs"], section["expected"], section["tolerance"]
    profile = _profile(inputs)
    lbm = xiaomi.lbm_coefficient(inputs["height_cm"], inputs["weight_kg"], inputs["impedance"], inputs["age"])
    assert lbm == pytest.approx(expected["lbm"], abs=tolerance)
    assert xiaomi.bone_mass_kg("male", lbm) == pytest.approx(expected["bone_kg"], abs=tolerance)
    bmr = anthro.bmr_schofield1985(profile, inputs["weight_kg"])
    assert bmr == pytest.approx(expected["bmr_schofield"], abs=section["bmr_tolerance"])
    visceral = xiaomi.visceral_fat("male", inputs["age"], inputs["height_cm"], inputs["weight_kg"], "holtek")
    assert visceral == pytest.approx(expected["visceral_holtek"], abs=tolerance)


def test_openscale_standardimpedancelib_through_the_literature_method() -> None:
    section = VECTORS["openscale_standardimpedancelib"]
    inputs, expected, tolerance = section["inputs"], section["expected"], section["tolerance"]
    composition = compose(
        {"weight_kg": inputs["weight_kg"], "impedance_ohm": inputs["resistance"]},
        _profile(inputs),
        method="literature",
    )
    values = {name: metric.value for name, metric in composition.metrics.items()}
    weight = inputs["weight_kg"]
    assert values["bmi"] == pytest.approx(expected["bmi"], abs=tolerance)
    assert values["fat_free_mass_kg"] == pytest.approx(expected["ffm_sun"], abs=tolerance)
    assert values["body_fat_pct"] == pytest.approx(expected["fat_pct"], abs=tolerance)
    assert values["bmr_kcal"] == pytest.approx(expected["bmr"], abs=tolerance)
    assert 100 * values["skeletal_muscle_mass_kg"] / weight == pytest.approx(expected["smm_pct"], abs=tolerance)
    # We report litres as kilograms; openScale converts with its own factor.
    assert values["water_pct"] * section["litres_to_kg"] == pytest.approx(expected["tbw_pct_kg"], abs=tolerance)
    assert composition.metrics["body_fat_pct"].method == "sun2003"
    assert composition.metrics["bmr_kcal"].method == "cunningham1991"


EQUATIONS = VECTORS["equations"]
_EQUATION_FUNCTIONS = {
    "bmi": lambda p, s: s["weight_kg"] / p.height_m**2,
    "ffm_kyle2001": lambda p, s: lit.ffm_kyle2001(p, s["weight_kg"], s["resistance"], s["reactance"]),
    "ffm_sun2003": lambda p, s: lit.ffm_sun2003(p, s["weight_kg"], s["resistance"]),
    "tbw_sun2003": lambda p, s: lit.tbw_sun2003(p, s["weight_kg"], s["resistance"]),
    "smm_janssen2000": lambda p, s: lit.smm_janssen2000(p, s["resistance"]),
    "ffm_lee2015": lambda p, s: lit.ffm_lee2015(p, s["weight_kg"], s["resistance"]),
    "ffm_lukaski1985": lambda p, s: lit.ffm_lukaski1985(p, s["weight_kg"], s["resistance"]),
    "tbw_lukaski_bolonchuk1988": lambda p, s: lit.tbw_lukaski_bolonchuk1988(p, s["weight_kg"], s["resistance"]),
    "tbw_kushner1992": lambda p, s: lit.tbw_kushner1992(p, s["weight_kg"], s["resistance"]),
    "bf_deurenberg1991": lambda p, s: lit.bf_deurenberg1991(p, s["weight_kg"]),
    "bmr_mifflin1990": lambda p, s: anthro.bmr_mifflin1990(p, s["weight_kg"]),
    "bmr_harris_benedict1919": lambda p, s: anthro.bmr_harris_benedict1919(p, s["weight_kg"]),
    "bmr_roza_shizgal1984": lambda p, s: anthro.bmr_roza_shizgal1984(p, s["weight_kg"]),
    "bmr_schofield1985": lambda p, s: anthro.bmr_schofield1985(p, s["weight_kg"]),
}


@pytest.mark.parametrize(
    ("quantity", "subject", "expected"),
    [(row[0], name, row[1 + index]) for row in EQUATIONS["rows"] for index, name in enumerate(("P1", "P2"))],
)
def test_published_equation_worked_examples(quantity: str, subject: str, expected: float) -> None:
    data = EQUATIONS["subjects"][subject]
    value = _EQUATION_FUNCTIONS[quantity](_profile(data), data)
    assert value == pytest.approx(expected, abs=EQUATIONS["tolerance"])


def test_cunningham_ffmi_and_deurenberg_child_examples() -> None:
    tolerance = EQUATIONS["tolerance"]
    cunningham = EQUATIONS["cunningham_ffm60"]
    assert lit.bmr_cunningham1991(60) == pytest.approx(cunningham["bmr_cunningham1991"], abs=tolerance)
    assert lit.bmr_cunningham1980(60) == pytest.approx(cunningham["bmr_cunningham1980"], abs=tolerance)
    for case in EQUATIONS["ffmi"]:
        profile = Profile("male", 30, case["height_cm"])
        assert anthro.ffmi(case["ffm"], profile) == pytest.approx(case["ffmi"], abs=1e-4)
        assert anthro.normalised_ffmi(case["ffm"], profile) == pytest.approx(case["normalised"], abs=1e-4)
    child = EQUATIONS["deurenberg_child"]
    # Pick the height that gives the published BMI at some weight: BMI 17 at 1.30 m.
    weight = child["bmi"] * 1.3**2
    value = lit.bf_deurenberg1991(Profile(child["sex"], child["age"], 130), weight)
    assert value == pytest.approx(child["bf"], abs=tolerance)


def test_zepp_screenshot_issue9_consistency() -> None:
    """Inputs fitted, not published: a consistency check at display precision only."""
    case = VECTORS["zepp_screenshots"]["issue9"]
    values = _values(case["inputs"])
    for name, shown in case["display"].items():
        assert values[name] == pytest.approx(shown, abs=case["display_tolerance"]), name
    for name, shown in case["truncated"].items():
        assert math.floor(values[name]) == shown, name
    assert math.floor(values["bmi"] * 10) / 10 == case["bmi_one_decimal_truncated"]


def test_zepp_screenshot_issue29_identities() -> None:
    case = VECTORS["zepp_screenshots"]["issue29"]
    tolerance = case["tolerance"]
    water = xiaomi.water_pct(case["fat_pct"])
    muscle = xiaomi.muscle_mass_kg("female", case["weight_kg"], case["fat_pct"], case["bone_kg"])
    assert water == pytest.approx(case["water_pct"], abs=tolerance)
    assert muscle == pytest.approx(case["muscle_kg"], abs=tolerance)
    assert xiaomi.protein_pct(case["weight_kg"], muscle, water) == pytest.approx(case["protein_pct"], abs=tolerance)
