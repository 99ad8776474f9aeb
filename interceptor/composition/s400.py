"""Xiaomi Body Composition Scale S400 (dual frequency), as close to the Xiaomi Home / Mi Fitness app
as public data allows.

The app's algorithm (a Yunmai OEM) is unpublished. What is public (body-composition.md §0.4, §6.4;
composition-vectors.md §5.2): on all nine app records, FFM = W·(1 − fat), BMR = 370 + 21.6·FFM and
muscle = FFM − bone hold exactly. So we estimate fat % (and bone) with the Mi Scale 2 formulas on
the weight-packet impedance, the closest public model (−1.9…+1.6 points on three public pairs;
the reference's recommendation §11.3), and derive the rest the way the app does. Water and skeletal
muscle come from published 50 kHz equations on the other band and are labelled `literature`.

Bands: the weight packet carries the numerically smaller impedance, physically the higher
frequency (~250 kHz); the reading vocabulary names by value, so `impedance_high_ohm` is the smaller
and `impedance_low_ohm` (~50 kHz) the larger, whatever a decoder called them (§6.1).
"""

from __future__ import annotations

from collections.abc import Mapping

from interceptor.composition import literature, xiaomi
from interceptor.composition.core import (
    Options,
    Profile,
    Sheet,
    calibrated_fat,
    fat_confidence,
    impedance_problem,
)

METHOD = "s400"

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
)

# openScale's S400 pipeline (S400BodyComposition "Cole–Cole sanity"): tissue impedance at 50 kHz
# is about 10–20 % above 250 kHz; bands closer than 1 % mean the electrodes did not see a body.
MIN_BAND_SEPARATION = 0.01

# On the eight public S400 records water + protein + bone = FFM less 1.05–1.30 % of FFM; the rest is
# non-bone mineral and the like. Protein is then close to a residual, which is how we estimate it.
OTHER_FFM_FRACTION = 0.0118

# ECW/TBW outside this window is a failed model, not a body (openScale's S400 gate).
ECW_TBW_RANGE = (0.30, 0.55)

# What needs the ~50 kHz band; the rest needs only the weight packet.
LOW_BAND_METRICS = ("water_pct", "protein_pct", "skeletal_muscle_mass_kg")

UNPUBLISHED = (
    "the S400 app's algorithm is unpublished and the Mi Scale 2 formula misses it by several points "
    "on the public pairs, so we do not guess"
)


def compose(weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options) -> Sheet:
    sheet = Sheet()
    sheet.refuse_all(("visceral_fat", "metabolic_age", "body_score"), UNPUBLISHED)
    high, low = _bands(readings)
    problem = xiaomi.input_problem(weight_kg, profile) or impedance_problem("weight-packet impedance", high)
    if problem is not None or high is None:
        sheet.refuse_all(IMPEDANCE_METRICS, problem or "no weight-packet impedance")
        return sheet
    # Without a usable second band, fat and what follows from it stand; the 50 kHz estimates do not.
    low_problem = impedance_problem("second-band impedance", low)
    if low_problem is None and low is not None and (low - high) / high < MIN_BAND_SEPARATION:
        problem = f"the two impedances {high:g} and {low:g} Ω agree within 1 %: poor foot contact"
        sheet.refuse_all(IMPEDANCE_METRICS, problem)
        return sheet

    sex, age, height = profile.sex, profile.whole_years, profile.height_cm
    lbm = xiaomi.lbm_coefficient(height, weight_kg, high, age)
    bone = xiaomi.bone_mass_kg(sex, lbm)
    sheet.put("bone_mass_kg", bone, METHOD, "vendor-approximate")
    tbw = None
    if low_problem is not None or low is None:
        sheet.refuse_all(LOW_BAND_METRICS, low_problem or "no second-band impedance")
    else:
        literature.skeletal_muscle(sheet, profile, low)
        tbw = literature.body_water(sheet, profile, weight_kg, low, "sun2003")
        if tbw is not None:
            _water_compartments(sheet, profile, weight_kg, low, tbw)

    fat = calibrated_fat(xiaomi.body_fat_pct(sex, age, height, weight_kg, lbm), options)
    if fat is None:
        sheet.refuse_all(
            ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "muscle_mass_kg", "bmr_kcal", "protein_pct"),
            f"the calibration offset {options.fat_offset_pct:+g} moves body fat out of 0–75 %",
        )
        return sheet
    confidence = fat_confidence(options, "vendor-approximate")
    ffm = weight_kg - weight_kg * fat / 100
    sheet.put("body_fat_pct", fat, METHOD, confidence)
    sheet.put("fat_mass_kg", weight_kg * fat / 100, METHOD, confidence)
    sheet.put("fat_free_mass_kg", ffm, METHOD, confidence)
    sheet.put("bmr_kcal", literature.bmr_cunningham1991(ffm), METHOD, confidence)
    if ffm - bone > 0:
        sheet.put("muscle_mass_kg", ffm - bone, METHOD, confidence)
    else:
        sheet.refuse("muscle_mass_kg", f"estimated bone {bone:.1f} kg exceeds fat-free mass {ffm:.1f} kg")
    if tbw is None:
        sheet.refusals.setdefault("protein_pct", "follows from body water, which is missing")
        return sheet
    protein = ffm * (1 - OTHER_FFM_FRACTION) - tbw - bone
    if protein <= 0:
        sheet.refuse("protein_pct", "water and bone estimates leave no room for protein: estimates disagree")
    else:
        sheet.put("protein_pct", 100 * protein / weight_kg, METHOD, fat_confidence(options, "literature"))
    return sheet


def _bands(readings: Mapping[str, float]) -> tuple[float | None, float | None]:
    """(weight-packet ~250 kHz, ~50 kHz) impedances; by value when both are present."""
    high = readings.get("impedance_high_ohm")
    low = readings.get("impedance_low_ohm")
    if high is not None and low is not None:
        return min(high, low), max(high, low)
    return high, low


def _water_compartments(sheet: Sheet, profile: Profile, weight_kg: float, low: float, tbw: float) -> None:
    """Extracellular water (Hanai on the 50 kHz band) and intracellular water as the remainder."""
    ecw = literature.ecw_hanai(profile, weight_kg, low)
    ratio_low, ratio_high = ECW_TBW_RANGE
    if not ratio_low <= ecw / tbw <= ratio_high:
        reason = f"Hanai ECW/TBW {ecw / tbw:.2f} is outside {ratio_low:g}–{ratio_high:g}: model failed"
        sheet.refuse_all(("extracellular_water_kg", "intracellular_water_kg"), reason)
        return
    sheet.put("extracellular_water_kg", ecw, "hanai1997", "literature")
    sheet.put("intracellular_water_kg", tbw - ecw, "hanai1997", "literature")
