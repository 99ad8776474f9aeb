"""Xiaomi Body Composition Scale S400 (dual frequency), as the Xiaomi Home / Mi Fitness app shows it.

The app's algorithm (the scale is a Yunmai OEM) is unpublished. This method is derived from every
public weighing whose app values were published with the impedances and the profile, kept with
their sources in tests/fixtures/s400_pairs.json; scripts/fit_s400.py fits the two constants below
and prints their leave-one-out error (docs/composition.md, "s400").

* The app's outputs obey identities on every public record, which we follow exactly:
  fat-free mass = W·(1 − fat %), BMR = 370 + 21.6·FFM (Cunningham 1991; one record is 10 kcal off),
  muscle = FFM − bone, and water + protein + bone = FFM less about 1.1 % of it.
* Confidence: `vendor-approximate` for men; `unverified` for women, as every public pair is a man.
* Fat %: the Mi Scale 2 (Zepp) fat expression on the impedance the S400 sends with the weight, the
  larger, ~50 kHz band, scaled by FAT_SCALE. On the six public pairs the unscaled expression reads
  1.1–3.3 points high, in proportion to the fat; one factor fitted on five pairs predicts the sixth
  within 0.7 points, each in turn.
* Bone: a fixed fraction of fat-free mass (BONE_FRACTION), as the app's bone tracks FFM within its
  0.1 kg display steps.
* Water (Sun 2003), skeletal muscle (Janssen 2000) and the water compartments (Hanai) come from
  published 50 kHz equations on the same band and are labelled `literature`; protein is what the
  identity leaves of fat-free mass.

Bands: the with-weight packet carries the larger impedance (every public frame and pairing; the
reading vocabulary calls it `impedance_low_ohm`, the lower frequency), whatever a decoder named it.
"""

from __future__ import annotations

from collections.abc import Mapping

from interceptor.composition import literature, xiaomi
from interceptor.composition.core import (
    IMPEDANCE_RANGE_OHM,
    Options,
    Profile,
    Sheet,
    calibrated_fat,
    fat_confidence,
    impedance_problem,
    minor_problem,
)
from interceptor.model import Confidence

METHOD = "s400"

# Fitted by scripts/fit_s400.py on tests/fixtures/s400_pairs.json (least squares through the origin,
# all pairs); tests/composition/test_s400_fit.py fails when they drift from the data.
FAT_SCALE = 0.9095
BONE_FRACTION = 0.0543
# Water + protein + bone leave this share of the app's fat-free mass (mean over the records that
# show all three); protein is estimated as that residual.
OTHER_FFM_FRACTION = 0.0112

IMPEDANCE_METRICS = (
    "body_fat_pct",
    "fat_mass_kg",
    "fat_free_mass_kg",
    "bone_mass_kg",
    "muscle_mass_kg",
    "bmr_kcal",
    "water_pct",
    "protein_pct",
    "skeletal_muscle_mass_kg",
    "extracellular_water_kg",
    "intracellular_water_kg",
)
FROM_FAT = ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "bone_mass_kg", "muscle_mass_kg", "bmr_kcal",
            "protein_pct")

# openScale's S400 pipeline (S400BodyComposition "Cole–Cole sanity"): tissue impedance at 50 kHz
# is about 10–20 % above 250 kHz; bands closer than 1 % mean the electrodes did not see a body.
MIN_BAND_SEPARATION = 0.01

# ECW/TBW outside this window is a failed model, not a body (openScale's S400 gate).
ECW_TBW_RANGE = (0.30, 0.55)

# Why the app's other numbers are not shown (figures from scripts/fit_s400.py on the public pairs).
NOT_REPRODUCED = {
    "visceral_fat": "no public formula gives the S400 app's visceral fat within its rounding "
                    "(Zepp's misses the public pairs by up to 12 points)",
    "metabolic_age": "no public formula gives the S400 app's body age within its rounding "
                     "(Zepp's misses the public pairs by up to 41 years)",
    "body_score": "no public weighing shows the S400 app's body score next to its impedance and profile",
}


def zepp_fat_pct(profile: Profile, weight_kg: float, impedance_ohm: float) -> float:
    """The Mi Scale 2 fat expression (before its clamps) on the with-weight impedance."""
    lbm = xiaomi.lbm_coefficient(profile.height_cm, weight_kg, impedance_ohm, profile.whole_years)
    return xiaomi.unclamped_body_fat_pct(profile.sex, profile.whole_years, profile.height_cm, weight_kg, lbm)


def compose(weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options) -> Sheet:
    sheet = Sheet()
    for name, reason in NOT_REPRODUCED.items():
        sheet.refuse(name, reason)
    with_weight, without_weight = _bands(readings)
    minor = minor_problem(profile, "the S400 model", plural=False)
    problem = (
        minor
        or xiaomi.input_problem(weight_kg, profile)
        or impedance_problem("with-weight impedance", with_weight)
        or _contact_problem(with_weight, without_weight)
    )
    if problem is not None or with_weight is None:
        sheet.refuse_all(IMPEDANCE_METRICS, problem or "no with-weight impedance")
        if minor is not None:
            _refuse_water_by_its_age_range(sheet, profile)
        return sheet

    literature.skeletal_muscle(sheet, profile, with_weight)
    tbw = literature.body_water(sheet, profile, weight_kg, with_weight, "sun2003")
    if tbw is not None:
        _water_compartments(sheet, profile, weight_kg, with_weight, tbw)

    zepp = zepp_fat_pct(profile, weight_kg, with_weight)
    low, high = xiaomi.UNCLAMPED_FAT_RANGE
    if not low <= zepp <= high:
        sheet.refuse_all(FROM_FAT, f"the Zepp fat expression gives {zepp:.1f} %, outside {low:g}–{high:g} % where "
                                   "the app follows it, and no public S400 weighing shows what the app does there")
        return sheet
    fat = calibrated_fat(FAT_SCALE * zepp, options)
    if fat is None:
        sheet.refuse_all(FROM_FAT, f"the calibration offset {options.fat_offset_pct:+g} moves body fat out of 0–75 %")
        return sheet
    confidence = fat_confidence(options, _model_confidence(profile))
    ffm = weight_kg - weight_kg * fat / 100
    bone = BONE_FRACTION * ffm
    sheet.put("body_fat_pct", fat, METHOD, confidence)
    sheet.put("fat_mass_kg", weight_kg * fat / 100, METHOD, confidence)
    sheet.put("fat_free_mass_kg", ffm, METHOD, confidence)
    sheet.put("bmr_kcal", literature.bmr_cunningham1991(ffm), METHOD, confidence)
    sheet.put("bone_mass_kg", bone, METHOD, confidence)
    sheet.put("muscle_mass_kg", ffm - bone, METHOD, confidence)
    if tbw is None:
        sheet.refuse("protein_pct", f"follows from body water, which is missing: {sheet.refusals['water_pct']}")
        return sheet
    protein = ffm * (1 - OTHER_FFM_FRACTION) - tbw - bone
    if protein <= 0:
        sheet.refuse("protein_pct", "water and bone estimates leave no room for protein: estimates disagree")
    else:
        protein_confidence = "literature" if profile.is_male else "unverified"  # it follows from the FFM
        sheet.put("protein_pct", 100 * protein / weight_kg, METHOD, fat_confidence(options, protein_confidence))
    return sheet


def _model_confidence(profile: Profile) -> Confidence:
    """`vendor-approximate` for men, whom every public app pairing shows (all six are men);
    `unverified` for women: the same factor on the Zepp women's formula, which no public pairing
    checks against the app (docs/composition.md)."""
    return "vendor-approximate" if profile.is_male else "unverified"


def _refuse_water_by_its_age_range(sheet: Sheet, profile: Profile) -> None:
    """Water is Sun 2003's, not the S400 model's: a child younger than Sun 2003 was validated on is
    told that equation's own age range, the reason that holds whatever becomes of the S400 model."""
    _, validity = literature.TBW_EQUATIONS["sun2003"]
    problem = validity.problem(profile)
    if problem is not None:
        sheet.refuse("water_pct", problem)


def _bands(readings: Mapping[str, float]) -> tuple[float | None, float | None]:
    """(with-weight ~50 kHz, without-weight ~250 kHz) impedances.

    Two bands are told apart by value, the larger being the with-weight one. A lone
    `impedance_low_ohm` is a with-weight packet whose partner was lost; a lone `impedance_ohm` (a
    single number typed into `interceptor compute --method s400`) is taken as the with-weight one.
    A lone `impedance_high_ohm` is the without-weight band, which the fat model cannot use.
    """
    high = readings.get("impedance_high_ohm")
    low = readings.get("impedance_low_ohm")
    if high is not None and low is not None:
        return max(high, low), min(high, low)
    if low is not None:
        return low, None
    return readings.get("impedance_ohm"), high


def _contact_problem(with_weight: float | None, without_weight: float | None) -> str | None:
    """Poor foot contact shows as two bands that barely differ (a sentinel second band is ignored)."""
    low, high = IMPEDANCE_RANGE_OHM
    if with_weight is None or without_weight is None or not low <= without_weight <= high:
        return None
    if (with_weight - without_weight) / without_weight < MIN_BAND_SEPARATION:
        return f"the two impedances {without_weight:g} and {with_weight:g} Ω agree within 1 %: poor foot contact"
    return None


def _water_compartments(sheet: Sheet, profile: Profile, weight_kg: float, resistance: float, tbw: float) -> None:
    """Extracellular water (Hanai on the 50 kHz band) and intracellular water as the remainder."""
    ecw = literature.ecw_hanai(profile, weight_kg, resistance)
    ratio_low, ratio_high = ECW_TBW_RANGE
    if not ratio_low <= ecw / tbw <= ratio_high:
        reason = f"Hanai ECW/TBW {ecw / tbw:.2f} is outside {ratio_low:g}–{ratio_high:g}: model failed"
        sheet.refuse_all(("extracellular_water_kg", "intracellular_water_kg"), reason)
        return
    sheet.put("extracellular_water_kg", ecw, "hanai1997", "literature")
    sheet.put("intracellular_water_kg", tbw - ecw, "hanai1997", "literature")
