"""Metrics from weight, height, age and sex alone, shown for every weigh-in, impedance or not.

They need no vendor algorithm and no electrode contact, so a weight-only scale still gets them; a
method that knows better (the Zepp BMR, a BMR from measured fat-free mass) replaces them. Sources:
body-composition.md §7 (equations 7.12–7.19) and §3.10.
"""

from __future__ import annotations

from collections.abc import Callable

from interceptor.composition import xiaomi
from interceptor.composition.core import Options, Profile, Sheet, bmi, minor_problem
from interceptor.composition.literature import Validity


def bmr_mifflin1990(profile: Profile, weight_kg: float) -> float:
    """Mifflin MD, St Jeor ST et al., Am J Clin Nutr 1990;51:241–247."""
    base = 10 * weight_kg + 6.25 * profile.height_cm - 5 * profile.age_years
    return base + (5 if profile.is_male else -161)


def bmr_harris_benedict1919(profile: Profile, weight_kg: float) -> float:
    """Harris JA, Benedict FG, Carnegie Inst. Publ. 279 (1919)."""
    if profile.is_male:
        return 66.473 + 13.7516 * weight_kg + 5.0033 * profile.height_cm - 6.755 * profile.age_years
    return 655.0955 + 9.5634 * weight_kg + 1.8496 * profile.height_cm - 4.6756 * profile.age_years


def bmr_roza_shizgal1984(profile: Profile, weight_kg: float) -> float:
    """Roza AM, Shizgal HM, Am J Clin Nutr 1984;40:168 (Harris–Benedict refitted)."""
    if profile.is_male:
        return 88.362 + 13.397 * weight_kg + 4.799 * profile.height_cm - 5.677 * profile.age_years
    return 447.593 + 9.247 * weight_kg + 3.098 * profile.height_cm - 4.330 * profile.age_years


# Schofield 1985 (WHO/FAO/UNU) by age band [from, to): (kcal per kg, constant), men then women;
# constants as bodymiscale `util.get_bmr_schofield` tabulates them (body-composition.md §5.1).
_SCHOFIELD: tuple[tuple[float, float, tuple[float, float], tuple[float, float]], ...] = (
    (0, 3, (59.512, -30.4), (58.317, -31.1)),
    (3, 10, (22.706, 504.3), (20.315, 485.9)),
    (10, 18, (17.686, 658.2), (13.384, 692.6)),
    (18, 30, (15.057, 692.2), (14.818, 486.6)),
    (30, 60, (11.472, 873.1), (8.126, 845.6)),
    (60, float("inf"), (11.711, 587.7), (9.082, 658.5)),
)


def bmr_schofield1985(profile: Profile, weight_kg: float) -> float:
    """Schofield WN, Hum Nutr Clin Nutr 1985 (WHO/FAO/UNU), weight-only by age band."""
    for start, end, male, female in _SCHOFIELD:
        if start <= profile.age_years < end:
            per_kg, constant = male if profile.is_male else female
            return per_kg * weight_kg + constant
    raise ValueError(f"no Schofield band for age {profile.age_years}")


BMR_EQUATIONS: dict[str, tuple[Callable[[Profile, float], float], Validity]] = {
    "mifflin1990": (bmr_mifflin1990, Validity("Mifflin–St Jeor 1990", 19, 78, "healthy normal-weight and obese")),
    # 1919 sample as usually cited (men 16–63, women 15–74): not re-verified, so kept to its union.
    "harris_benedict1919": (bmr_harris_benedict1919, Validity("Harris–Benedict 1919", 15, 74, "healthy adults")),
    "roza_shizgal1984": (bmr_roza_shizgal1984, Validity("Roza & Shizgal 1984", 15, 74, "Harris–Benedict data")),
    "schofield1985": (bmr_schofield1985, Validity("Schofield 1985", 0, 130, "all ages, by band")),
}


def ffmi(ffm_kg: float, profile: Profile) -> float:
    """Fat-free mass index FFM/h² (VanItallie 1990; Schutz, Kyle, Pichard, Int J Obes 2002)."""
    return ffm_kg / profile.height_m**2


def normalised_ffmi(ffm_kg: float, profile: Profile) -> float:
    """FFMI scaled to 1.80 m (Kouri 1995, citation not re-verified), for comparing athletes."""
    return ffmi(ffm_kg, profile) + 6.1 * (1.8 - profile.height_m)


def compose(weight_kg: float, profile: Profile, options: Options) -> Sheet:
    sheet = Sheet()
    sheet.put("bmi", bmi(weight_kg, profile), "bmi", "anthropometric")
    minor = minor_problem(profile, "the Zepp standard-weight formula", plural=False)
    if minor is None:
        sheet.put("ideal_weight_kg", xiaomi.ideal_weight_kg(profile.sex, profile.height_cm), "xiaomi", "anthropometric")
    else:
        sheet.refuse("ideal_weight_kg", minor)
    equation, validity = BMR_EQUATIONS[options.bmr_equation]
    problem = validity.problem(profile)
    if problem is None:
        sheet.put("bmr_kcal", equation(profile, weight_kg), options.bmr_equation, "anthropometric")
    else:
        sheet.refuse("bmr_kcal", problem)
    return sheet
