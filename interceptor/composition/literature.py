"""Published, peer-reviewed body-composition equations, each with the population it was fitted on.

These are what we can say without a vendor's algorithm: every one was derived with hand-to-foot
50 kHz tetrapolar impedance (except Lee 2015, foot-to-foot), mostly lying down, so on a bathroom
scale they are estimates, labelled `literature`, and refused for people outside the ages the paper
validated. Coefficients and populations: /work/shared/reference/body-composition.md §7; worked
examples: composition-vectors.md §4. Heights are cm, weights kg, impedances Ω, ages years; water
volumes are litres, taken as kilograms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from interceptor.composition.core import (
    Options,
    Profile,
    Sheet,
    bmi,
    body_problem,
    calibrated_fat,
    fat_confidence,
    impedance_problem,
)


@dataclass(frozen=True)
class Validity:
    """Who an equation was fitted on; `problem` says why it does not apply to a person."""

    citation: str
    min_age: float
    max_age: float
    population: str

    def problem(self, profile: Profile) -> str | None:
        if self.min_age <= profile.age_years <= self.max_age:
            return None
        return (
            f"{self.citation} was validated on ages {self.min_age:g}–{self.max_age:g} "
            f"({self.population}); age {profile.age_years:.1f} is outside"
        )


def _height2_over_r(profile: Profile, resistance_ohm: float) -> float:
    """The impedance index H²/R (cm²/Ω) every BIA equation is built on."""
    return profile.height_cm**2 / resistance_ohm


def _male(profile: Profile) -> float:
    return 1.0 if profile.is_male else 0.0


# --- fat-free mass ------------------------------------------------------------------------------


def ffm_sun2003(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Sun SS et al., Am J Clin Nutr 2003;77:331–340 (4-compartment reference), coefficients as
    openScale rounds them (the reference file could not verify more decimals)."""
    index = _height2_over_r(profile, resistance_ohm)
    if profile.is_male:
        return -10.68 + 0.65 * index + 0.26 * weight_kg + 0.02 * resistance_ohm
    return -9.53 + 0.69 * index + 0.17 * weight_kg + 0.02 * resistance_ohm


def ffm_lee2015(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Lee et al., Nutr J 2015 (PMC4489024): the one DXA-calibrated *foot-to-foot* equation."""
    return (
        13.055 + 0.204 * weight_kg + 0.394 * _height2_over_r(profile, resistance_ohm)
        - 0.136 * profile.age_years + 8.125 * _male(profile)
    )


def ffm_lukaski1985(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Lukaski HC et al., Am J Clin Nutr 1985;41:810–817 (densitometry); weight is not a term."""
    del weight_kg  # the equation uses the impedance index alone
    return 0.85 * _height2_over_r(profile, resistance_ohm) + 3.04


def ffm_kyle2001(profile: Profile, weight_kg: float, resistance_ohm: float, reactance_ohm: float) -> float:
    """Kyle UG et al., Nutrition 2001;17:248–253 ("Geneva", DXA reference).

    Needs reactance, which none of the supported scales reports, so `compose` never offers it;
    it is here for data imported from a clinical analyser that does.
    """
    return (
        -4.104 + 0.518 * _height2_over_r(profile, resistance_ohm) + 0.231 * weight_kg
        + 0.130 * reactance_ohm + 4.229 * _male(profile)
    )


FFM_EQUATIONS: dict[str, tuple[Callable[[Profile, float, float], float], Validity]] = {
    "sun2003": (ffm_sun2003, Validity("Sun 2003", 12, 94, "white and black Americans")),
    "lee2015": (ffm_lee2015, Validity("Lee 2015", 16, 75, "Taiwanese adults, BMI 15.8–43.1")),
    # The paper studied young adults; 18–50 is our reading of that, not a published bound.
    "lukaski1985": (ffm_lukaski1985, Validity("Lukaski 1985", 18, 50, "young adults")),
}


# --- total body water ---------------------------------------------------------------------------


def tbw_sun2003(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Sun 2003 total body water (dilution reference), coefficients as openScale rounds them."""
    index = _height2_over_r(profile, resistance_ohm)
    if profile.is_male:
        return 1.20 + 0.45 * index + 0.18 * weight_kg
    return 3.75 + 0.45 * index + 0.11 * weight_kg


def tbw_lukaski_bolonchuk1988(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Lukaski & Bolonchuk (Aviat Space Environ Med 1988, citation not re-verified), middle-aged adults."""
    return (
        0.377 * _height2_over_r(profile, resistance_ohm) + 0.14 * weight_kg - 0.08 * profile.age_years
        + 2.9 * _male(profile) + 4.65
    )


def tbw_kushner1992(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Kushner et al. (Am J Clin Nutr 1992, citation not re-verified): children and adults alike."""
    return 0.59 * _height2_over_r(profile, resistance_ohm) + 0.065 * weight_kg + 0.04


TBW_EQUATIONS: dict[str, tuple[Callable[[Profile, float, float], float], Validity]] = {
    "sun2003": (tbw_sun2003, Validity("Sun 2003", 12, 94, "white and black Americans")),
    "lukaski_bolonchuk1988": (
        tbw_lukaski_bolonchuk1988,
        Validity("Lukaski & Bolonchuk 1988", 18, 94, "middle-aged adults"),
    ),
    "kushner1992": (tbw_kushner1992, Validity("Kushner 1992", 0, 94, "neonates to adults")),
}


# --- other compartments -------------------------------------------------------------------------

JANSSEN2000 = Validity("Janssen 2000", 18, 86, "multi-ethnic adults; underestimates in Asians")


def smm_janssen2000(profile: Profile, resistance_ohm: float) -> float:
    """Skeletal muscle mass in kg, Janssen I et al., J Appl Physiol 2000;89:465–471 (whole-body MRI)."""
    return (
        0.401 * _height2_over_r(profile, resistance_ohm) + 3.825 * _male(profile)
        - 0.071 * profile.age_years + 5.102
    )


def ecw_hanai(profile: Profile, weight_kg: float, resistance_ohm: float) -> float:
    """Extracellular water in litres by Hanai mixture theory (De Lorenzo 1997; Matthie 2005).

    The theory wants the zero-frequency resistance; at 50 kHz part of the current already crosses
    cells, so this overstates ECW (body-composition.md §6.2). K_B 4.3, ρ_ECW 40.5 Ω·cm (men) /
    39.0 (women), body density 1.05.
    """
    resistivity = 40.5 if profile.is_male else 39.0
    k = (4.3**2 * resistivity**2 / 1.05) ** (1 / 3) / 100
    return k * (profile.height_cm**2 * math.sqrt(weight_kg) / resistance_ohm) ** (2 / 3)


def bf_deurenberg1991(profile: Profile, weight_kg: float) -> float:
    """Body fat % from BMI, age and sex: Deurenberg P et al., Br J Nutr 1991;65:105–114.

    The child form applies up to 15 years; SEE about 4 points of fat, whatever the scale.
    """
    value = bmi(weight_kg, profile)
    if profile.age_years <= 15:
        return 1.51 * value - 0.70 * profile.age_years - 3.6 * _male(profile) + 1.4
    return 1.20 * value + 0.23 * profile.age_years - 10.8 * _male(profile) - 5.4


DEURENBERG1991 = Validity("Deurenberg 1991", 7, 83, "Dutch children and adults")


def bmr_cunningham1991(ffm_kg: float) -> float:
    """Cunningham JJ, Am J Clin Nutr 1991;54:963–969 ("Katch–McArdle"); the S400 app obeys it exactly."""
    return 370 + 21.6 * ffm_kg


def bmr_cunningham1980(ffm_kg: float) -> float:
    """Cunningham JJ, Am J Clin Nutr 1980;33:2372."""
    return 500 + 22 * ffm_kg


FFM_BMR_EQUATIONS: dict[str, Callable[[float], float]] = {
    "cunningham1991": bmr_cunningham1991,
    "cunningham1980": bmr_cunningham1980,
}

# Sun's FFM falls with R through 0.65·H²/R and rises through 0.02·R; past R = √(0.65/0.02)·H the rise
# wins and more impedance would mean less fat: the equation is extrapolating there. The men's 0.65 gives
# the lower bound (women's 0.69 a slightly higher one), which serves both.
SUN2003_MAX_R_PER_CM = math.sqrt(0.65 / 0.02)

# A fat % outside this window from an impedance equation means the person is unlike the paper's
# population (openScale's S400 gate uses 3–60 % for men and 8–70 % for women).
PLAUSIBLE_FAT_PCT = (3.0, 70.0)


# --- methods ------------------------------------------------------------------------------------

LITERATURE_METRICS = (
    "body_fat_pct",
    "fat_mass_kg",
    "fat_free_mass_kg",
    "water_pct",
    "skeletal_muscle_mass_kg",
    "bmr_kcal",
)
NOT_IN_LITERATURE = ("muscle_mass_kg", "bone_mass_kg", "visceral_fat", "metabolic_age", "protein_pct", "body_score")


def skeletal_muscle(sheet: Sheet, profile: Profile, resistance_ohm: float) -> None:
    """Janssen skeletal muscle for any method with a 50 kHz-like impedance, or the refusal."""
    problem = JANSSEN2000.problem(profile)
    if problem is not None:
        sheet.refuse("skeletal_muscle_mass_kg", problem)
        return
    sheet.put("skeletal_muscle_mass_kg", smm_janssen2000(profile, resistance_ohm), "janssen2000", "literature")


def body_water(sheet: Sheet, profile: Profile, weight_kg: float, resistance_ohm: float, equation: str) -> float | None:
    """Total body water % from the chosen equation (or the refusal); returns TBW in kg when accepted."""
    function, validity = TBW_EQUATIONS[equation]
    problem = validity.problem(profile)
    tbw = function(profile, weight_kg, resistance_ohm)
    # Hydrated lean tissue is about 73 % water and fat tissue little, so TBW is 30–75 % of weight.
    if problem is None and not 0.30 * weight_kg <= tbw <= 0.75 * weight_kg:
        problem = f"{validity.citation} gives {tbw:.1f} L of water, outside 30–75 % of body weight"
    if problem is not None:
        sheet.refuse("water_pct", problem)
        return None
    sheet.put("water_pct", 100 * tbw / weight_kg, equation, "literature")
    return tbw


def put_fat(sheet: Sheet, weight_kg: float, fat_pct: float, method: str, options: Options) -> float | None:
    """Body fat %, fat mass and fat-free mass from one fat % (with the calibration offset applied)."""
    fat = calibrated_fat(fat_pct, options)
    if fat is None:
        sheet.refuse_all(
            ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg"),
            f"the calibration offset {options.fat_offset_pct:+g} moves body fat out of 0–75 %",
        )
        return None
    confidence = fat_confidence(options, "literature")
    sheet.put("body_fat_pct", fat, method, confidence)
    sheet.put("fat_mass_kg", weight_kg * fat / 100, method, confidence)
    sheet.put("fat_free_mass_kg", weight_kg - weight_kg * fat / 100, method, confidence)
    return weight_kg - weight_kg * fat / 100


def compose(weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options) -> Sheet:
    """Single-impedance published equations; for a dual-frequency scale the 50 kHz (larger) value."""
    sheet = Sheet()
    sheet.refuse_all(NOT_IN_LITERATURE, "no published impedance equation for this quantity")
    resistance = readings.get("impedance_ohm", readings.get("impedance_low_ohm"))
    problem = body_problem(weight_kg, profile) or impedance_problem("impedance", resistance)
    if problem is not None or resistance is None:
        sheet.refuse_all(LITERATURE_METRICS, problem or "no impedance")
        return sheet

    body_water(sheet, profile, weight_kg, resistance, options.tbw_equation)
    skeletal_muscle(sheet, profile, resistance)
    function, validity = FFM_EQUATIONS[options.ffm_equation]
    ffm = function(profile, weight_kg, resistance)
    fat = 100 * (1 - ffm / weight_kg)
    problem = validity.problem(profile)
    low, high = PLAUSIBLE_FAT_PCT
    if problem is None and not low <= fat <= high:
        problem = f"{validity.citation} gives {fat:.1f} % fat, outside {low:g}–{high:g} %: unlike its population"
    if problem is None and options.ffm_equation == "sun2003" and resistance > SUN2003_MAX_R_PER_CM * profile.height_cm:
        problem = f"impedance {resistance:g} Ω is beyond the range where Sun 2003 behaves physically"
    if problem is not None:
        sheet.refuse_all(("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "bmr_kcal"), problem)
        return sheet
    calibrated_ffm = put_fat(sheet, weight_kg, fat, options.ffm_equation, options)
    if calibrated_ffm is not None:
        bmr = FFM_BMR_EQUATIONS[options.ffm_bmr_equation]
        sheet.put("bmr_kcal", bmr(calibrated_ffm), options.ffm_bmr_equation, fat_confidence(options, "literature"))
    return sheet


def compose_without_impedance(
    weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options
) -> Sheet:
    """Body fat from BMI (Deurenberg 1991), for a scale that measures no usable impedance (Withings
    without vendor values: its type-16 value is kept raw, its meaning being undocumented)."""
    del readings  # only weight matters here
    sheet = Sheet()
    problem = DEURENBERG1991.problem(profile) or body_problem(weight_kg, profile)
    fat = bf_deurenberg1991(profile, weight_kg)
    low, high = PLAUSIBLE_FAT_PCT
    if problem is None and not low <= fat <= high:
        problem = f"Deurenberg 1991 gives {fat:.1f} % fat, outside {low:g}–{high:g} %"
    if problem is not None:
        sheet.refuse_all(("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg"), problem)
    else:
        put_fat(sheet, weight_kg, fat, "deurenberg1991", options)
    sheet.refuse_all(
        ("water_pct", "muscle_mass_kg", "skeletal_muscle_mass_kg", "bone_mass_kg", "visceral_fat", "metabolic_age",
         "protein_pct", "body_score"),
        "needs an impedance, and this weigh-in has none we can use",
    )
    return sheet
