"""Mi Body Composition Scale 2 as the Zepp Life (formerly Mi Fit) app shows it.

Users judge us by whether we show the numbers their phone showed, so this method reproduces the
app, caps and all, rather than what physiology would prefer. The formulas are the public reverse
engineering by prototux (MIBCS), as kept in RobertWojtowicz/export2garmin@3761f07
`miscale/Xiaomi_Scale_Body_Metrics.py` and `body_scales.py`, with the body score of
lolouk44/xiaomi_mi_scale@e9db989 `src/body_score.py`; written out as math in
/work/shared/reference/body-composition.md §3. They reproduce a real Zepp cloud record to five
digits (composition-vectors.md §5.1); the app truncates BMR, visceral fat and metabolic age to
integers, we keep full precision and leave rounding to display.

Ages are completed years and heights centimetres, as in the app.
"""

from __future__ import annotations

from collections.abc import Mapping

from interceptor.composition import literature
from interceptor.composition.core import (
    Options,
    Profile,
    Sex,
    Sheet,
    body_problem,
    calibrated_fat,
    fat_confidence,
    impedance_problem,
    minor_problem,
)

METHOD = "xiaomi"

# What this method would produce; each is refused together when the weigh-in has no usable impedance.
IMPEDANCE_METRICS = (
    "body_fat_pct",
    "fat_mass_kg",
    "fat_free_mass_kg",
    "water_pct",
    "bone_mass_kg",
    "muscle_mass_kg",
    "protein_pct",
    "visceral_fat",
    "metabolic_age",
    "body_score",
    "skeletal_muscle_mass_kg",
)

# The scale and the canonical port accept nothing heavier, taller or older than this.
MAX_WEIGHT_KG = 200.0
MIN_WEIGHT_KG = 10.0
MAX_HEIGHT_CM = 220.0
MAX_AGE_YEARS = 99


def clamp(value: float, low: float, high: float) -> float:
    return min(max(value, low), high)


def lbm_coefficient(height_cm: float, weight_kg: float, impedance_ohm: float, age: int) -> float:
    """The app's "LBM coefficient": an intermediate in kg-like units, not a lean mass (§3.1)."""
    return (
        9.058 * (height_cm / 100) ** 2 + 0.32 * weight_kg + 12.226 - 0.0068 * impedance_ohm - 0.0542 * age
    )


def unclamped_body_fat_pct(sex: Sex, age: int, height_cm: float, weight_kg: float, lbm: float) -> float:
    """Body fat % by the §3.2 expression alone, before the app's jumps and clamps."""
    subtractor = (9.25 if age <= 49 else 7.25) if sex == "female" else 0.8
    factor = 1.0
    if sex == "male" and weight_kg < 61:
        factor = 0.98
    elif sex == "female" and weight_kg > 60:
        factor = 0.96 * (1.03 if height_cm > 160 else 1.0)
    elif sex == "female" and weight_kg < 50:
        factor = 1.02 * (1.03 if height_cm > 160 else 1.0)
    return 100 * (1 - (lbm - subtractor) * factor / weight_kg)


# Where the app stops following the expression: above 63 it shows 75, below 5 it shows 5.
UNCLAMPED_FAT_RANGE = (5.0, 63.0)


def body_fat_pct(sex: Sex, age: int, height_cm: float, weight_kg: float, lbm: float) -> float:
    """Body fat % (§3.2), with the app's jump to 75 above 63 and its [5, 75] clamp."""
    fat = unclamped_body_fat_pct(sex, age, height_cm, weight_kg, lbm)
    if fat > UNCLAMPED_FAT_RANGE[1]:
        fat = 75.0
    return clamp(fat, UNCLAMPED_FAT_RANGE[0], 75)


def water_pct(fat_pct: float) -> float:
    """Body water % of weight (§3.3); a result of 65 or more becomes the app's 73.5 cap."""
    water = (100 - fat_pct) * 0.7
    factor = 1.02 if water <= 50 else 0.98
    if water * factor >= 65:
        water = 75.0
    return clamp(water * factor, 35, 75)


def bone_mass_kg(sex: Sex, lbm: float) -> float:
    """Bone mineral mass in kg (§3.4), with the app's jump to 8 kg above 5.1/5.2 kg."""
    bone = 0.05158 * lbm - (0.245691014 if sex == "female" else 0.18016894)
    bone += 0.1 if bone > 2.2 else -0.1
    if bone > (5.1 if sex == "female" else 5.2):
        bone = 8.0
    return clamp(bone, 0.5, 8)


def muscle_mass_kg(sex: Sex, weight_kg: float, fat_pct: float, bone_kg: float) -> float:
    """Zepp's "muscle": weight minus fat mass minus bone (§3.5), i.e. soft lean mass, not skeletal muscle."""
    muscle = weight_kg - weight_kg * fat_pct / 100 - bone_kg
    if muscle >= (84 if sex == "female" else 93.5):
        muscle = 120.0
    return clamp(muscle, 10, 120)


def protein_pct(weight_kg: float, muscle_kg: float, water: float) -> float:
    """Protein % (§3.9): the part of the muscle % that is not water."""
    return clamp(100 * muscle_kg / weight_kg - water, 5, 32)


def bmr_kcal(sex: Sex, age: int, height_cm: float, weight_kg: float) -> float:
    """The app's BMR regression (§3.6), with its 5000 kcal cap; Zepp shows the integer part."""
    if sex == "female":
        bmr = 864.6 + 10.2036 * weight_kg - 0.39336 * height_cm - 6.204 * age
        capped = bmr > 2996
    else:
        bmr = 877.8 + 14.916 * weight_kg - 0.726 * height_cm - 8.976 * age
        capped = bmr > 2322
    return clamp(5000.0 if capped else bmr, 500, 10000)


def metabolic_age(sex: Sex, age: int, height_cm: float, weight_kg: float, impedance_ohm: float) -> float:
    """Zepp's "body age" (§3.7), clamped to [15, 80]; Zepp shows the integer part."""
    if sex == "female":
        years = -1.1165 * height_cm + 1.5784 * weight_kg + 0.4615 * age + 0.0415 * impedance_ohm + 83.2548
    else:
        years = -0.7471 * height_cm + 0.9161 * weight_kg + 0.4184 * age + 0.0517 * impedance_ohm + 54.2267
    return clamp(years, 15, 80)


def _hyperbolic_visceral(sex: Sex, age: int, height_cm: float, weight_kg: float) -> float:
    if sex == "female":
        return 500 * weight_kg / (0.1158 * height_cm**2 + 1.45 * height_cm - 120) - 6 + 0.07 * age
    return 305 * weight_kg / (0.0826 * height_cm**2 - 0.4 * height_cm + 48) - 2.9 + 0.15 * age


def visceral_fat_legacy(sex: Sex, age: int, height_cm: float, weight_kg: float) -> float:
    """Visceral-fat rating, prototux form (§3.8), unclamped.

    Its light-women branch subtracts the whole age, which sends most of them to the clamp; users
    report it reads about 4 points above the app.
    """
    if sex == "female":
        if weight_kg > 0.5 * height_cm - 13:
            return _hyperbolic_visceral(sex, age, height_cm, weight_kg)
        return (0.691 - 0.0048 * height_cm) * weight_kg - 0.027 * height_cm + 0.07 * age - age
    if height_cm < 1.6 * weight_kg:
        return _hyperbolic_visceral(sex, age, height_cm, weight_kg)
    return (0.765 - 0.0015 * height_cm) * weight_kg - 0.143 * height_cm + 0.15 * age - 5


def visceral_fat_holtek(sex: Sex, age: int, height_cm: float, weight_kg: float) -> float:
    """Visceral-fat rating, Holtek/1byone form (§3.8) as bodymiscale uses since 2023, unclamped."""
    if sex == "female":
        if weight_kg <= 0.5 * height_cm - 13:
            return (0.691 - 0.0024 * height_cm) * weight_kg - 0.027 * height_cm + 0.07 * age - 10.5
        return _hyperbolic_visceral(sex, age, height_cm, weight_kg)
    if height_cm < 1.6 * weight_kg + 63:
        return _hyperbolic_visceral(sex, age, height_cm, weight_kg)
    return (0.765 - 0.0015 * height_cm) * weight_kg - 0.143 * height_cm + 0.15 * age - 5


def visceral_fat(sex: Sex, age: int, height_cm: float, weight_kg: float, variant: str) -> float:
    """The rating on the app's 1–50 scale, in the chosen variant."""
    form = visceral_fat_legacy if variant == "legacy" else visceral_fat_holtek
    return clamp(form(sex, age, height_cm, weight_kg), 1, 50)


def ideal_weight_kg(sex: Sex, height_cm: float) -> float:
    """Zepp's `standBodyWeight` (§3.10); the S400 app's `standard_weight_v2` is the same formula."""
    return (height_cm - 70) * 0.6 if sex == "female" else (height_cm - 80) * 0.7


# §3.13: body-fat % thresholds (very low, low, top of normal, high) by age band [from, to).
_FAT_SCALE: tuple[tuple[int, int, tuple[float, ...], tuple[float, ...]], ...] = (
    # from, to, female, male
    (0, 12, (12, 21, 30, 34), (7, 16, 25, 30)),
    (12, 14, (15, 24, 33, 37), (7, 16, 25, 30)),
    (14, 16, (18, 27, 36, 40), (7, 16, 25, 30)),
    (16, 18, (20, 28, 37, 41), (7, 16, 25, 30)),
    (18, 40, (21, 28, 35, 40), (11, 17, 22, 27)),
    (40, 60, (22, 29, 36, 41), (12, 18, 23, 28)),
    (60, 100, (23, 30, 37, 42), (14, 20, 25, 30)),
)


def fat_scale(sex: Sex, age: int) -> tuple[float, ...]:
    for start, end, female, male in _FAT_SCALE:
        if start <= age < end:
            return female if sex == "female" else male
    raise ValueError(f"no fat scale for age {age}")


def muscle_scale(sex: Sex, height_cm: float) -> tuple[float, float]:
    """Normal muscle-mass range in kg by height (§3.13)."""
    if sex == "female":
        if height_cm >= 160:
            return 36.5, 42.6
        return (32.9, 37.6) if height_cm >= 150 else (29.1, 34.8)
    if height_cm >= 170:
        return 49.4, 59.5
    return (44.0, 52.5) if height_cm >= 160 else (38.5, 46.6)


def bone_floor_kg(sex: Sex, weight_kg: float) -> float:
    """Lower bound of normal bone mass by weight (§3.13)."""
    if sex == "female":
        return 1.8 if weight_kg >= 60 else 1.5 if weight_kg >= 45 else 1.3
    return 2.0 if weight_kg >= 75 else 1.9 if weight_kg >= 60 else 1.6


def normal_bmr_kcal(sex: Sex, age: int, weight_kg: float) -> float:
    """The BMR the app considers normal for this weight and age (§3.13)."""
    per_kg = (21.6, 20.07, 19.35) if sex == "male" else (21.24, 19.53, 18.63)
    band = 0 if age < 30 else 1 if age < 50 else 2
    return weight_kg * per_kg[band]


def fat_mass_to_ideal_kg(sex: Sex, age: int, weight_kg: float, fat_pct: float) -> float:
    """Fat mass above (positive, "to lose") or below (negative, "to gain") the top of normal (§3.11)."""
    return weight_kg * fat_pct / 100 - weight_kg * fat_scale(sex, age)[2] / 100


def body_type(sex: Sex, age: int, height_cm: float, fat_pct: float, muscle_kg: float) -> int:
    """The nine-class body type (§3.12), 1-based as Garmin's physique rating.

    1 obese, 2 overweight, 3 thick-set, 4 lack-exercise, 5 balanced, 6 balanced-muscular,
    7 skinny, 8 balanced-skinny, 9 skinny-muscular. Does not match the current app (§5.1).
    """
    scale = fat_scale(sex, age)
    fat_band = 0 if fat_pct > scale[2] else 2 if fat_pct < scale[1] else 1
    low, high = muscle_scale(sex, height_cm)
    muscle_band = 2 if muscle_kg > high else 0 if muscle_kg < low else 1
    return 1 + muscle_band + 3 * fat_band


def _malus(value: float, worst: float, best: float, most: float, least: float) -> float:
    """Linear deduction from `least` at `best` to `most` at `worst`, floored at zero (§3.14)."""
    return max(0.0, (value - best) / (worst - best) * (most - least))


def body_score(
    sex: Sex,
    age: int,
    height_cm: float,
    weight_kg: float,
    *,
    fat_pct: float,
    muscle_kg: float,
    water: float,
    visceral: float,
    bone_kg: float,
    bmr: float,
    protein: float,
) -> float:
    """The 0–100 score as reverse engineered from the old Mi Fit (§3.14).

    The current app scores differently (the Zepp record scores 89 where this gives 100), hence the
    `vendor-approximate` label. Deductions follow the reverse engineering, including its quirks.
    """
    scale = fat_scale(sex, age)
    return clamp(
        100
        - _bmi_deduction(age, height_cm, weight_kg, fat_pct, scale)
        - _fat_deduction(sex, fat_pct, scale)
        - _tiered_deduction(muscle_kg, muscle_scale(sex, height_cm)[0], 5.0, (10, 5), 10)
        - _tiered_deduction(water, 55.0 if sex == "male" else 45.0, 5.0, (10, 5), 10)
        - _visceral_deduction(visceral)
        - _tiered_deduction(bone_kg, bone_floor_kg(sex, weight_kg), 0.3, (10, 5), 10)
        # The reverse engineering notes the app adds 5 here, probably by mistake, and keeps it.
        - _tiered_deduction(bmr, normal_bmr_kcal(sex, age, weight_kg), 300.0, (6, 3), 6, offset=5.0)
        - _protein_deduction(protein),
        0,
        100,
    )


def _tiered_deduction(
    value: float, normal: float, span: float, slope: tuple[float, float], floor_malus: float,
    offset: float | None = None,
) -> float:
    """No deduction at or above `normal`, `floor_malus` at or below `normal - span`, linear between."""
    if value >= normal:
        return 0.0
    if value <= normal - span:
        return floor_malus
    most, least = slope
    return _malus(value, normal - span, normal, most, least) + (least if offset is None else offset)


def _bmi_deduction(age: int, height_cm: float, weight_kg: float, fat_pct: float, scale: tuple[float, ...]) -> float:
    if height_cm < 90:
        return 0.0
    value = weight_kg / (height_cm / 100) ** 2
    adult = age >= 18
    fat_ok = fat_pct < scale[2]
    if fat_ok and value >= (18.5 if adult else 14.0):
        return 0.0
    if value <= 14:
        return 30.0
    if value < 15:
        return _malus(value, 14, 15, 30, 15) + 15
    if value < 18.5 and adult:
        return _malus(value, 15, 18.5, 15, 5) + 5
    # Normal or high BMI with too much fat.
    if value >= 32:
        return 10.0
    return 5.0 if value > 28 else 0.0


def _fat_deduction(sex: Sex, fat_pct: float, scale: tuple[float, ...]) -> float:
    best = scale[2] - (3.0 if sex == "male" else 2.0)
    if scale[0] <= fat_pct < best:
        return 0.0
    if fat_pct >= scale[3]:
        return 20.0
    return _malus(fat_pct, scale[3], scale[2], 20, 10) + 10


def _visceral_deduction(visceral: float) -> float:
    if visceral < 10:
        return 0.0
    if visceral >= 15:
        return 15.0
    return _malus(visceral, 15, 10, 15, 10) + 10


def _protein_deduction(protein: float) -> float:
    if protein > 17:
        return 0.0
    if protein < 10:
        return 10.0
    if protein <= 16:
        return _malus(protein, 10, 16, 10, 5) + 5
    return _malus(protein, 16, 17, 5, 3) + 3


def input_problem(weight_kg: float, profile: Profile) -> str | None:
    """Why the app's formulas do not apply to this person, or None (bounds of the canonical port)."""
    if not MIN_WEIGHT_KG <= weight_kg <= MAX_WEIGHT_KG:
        return f"the Zepp formulas take {MIN_WEIGHT_KG:g}–{MAX_WEIGHT_KG:g} kg, not {weight_kg:g} kg"
    if profile.height_cm > MAX_HEIGHT_CM:
        return f"the Zepp formulas take heights up to {MAX_HEIGHT_CM:g} cm"
    if profile.whole_years > MAX_AGE_YEARS:
        return f"the Zepp formulas take ages up to {MAX_AGE_YEARS}"
    return body_problem(weight_kg, profile, vendor=True)


def compose(weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options) -> Sheet:
    """All Zepp metrics for one weigh-in; `impedance_ohm` is the impedance, or for an S400 its
    ~50 kHz band (`impedance_low_ohm`, the value the S400 sends with the weight), the one comparable
    to the Mi Scale 2's (docs/composition.md, "Which impedance the weight packet carries")."""
    sheet = Sheet()
    minor = minor_problem(profile, "the Zepp formulas")
    if minor is not None:
        # The Zepp BMR is an adult regression too.
        sheet.refuse_all((*IMPEDANCE_METRICS, "bmr_kcal"), minor)
        return sheet
    impedance = readings.get("impedance_ohm", readings.get("impedance_low_ohm"))
    problem = input_problem(weight_kg, profile) or impedance_problem("impedance", impedance)
    if problem is not None or impedance is None:
        sheet.refuse_all(IMPEDANCE_METRICS, problem or "no impedance")
        return sheet

    sex, age, height = profile.sex, profile.whole_years, profile.height_cm
    sheet.put("bmr_kcal", bmr_kcal(sex, age, height, weight_kg), METHOD, "vendor")
    lbm = lbm_coefficient(height, weight_kg, impedance, age)
    fat = calibrated_fat(body_fat_pct(sex, age, height, weight_kg, lbm), options)
    sheet.put("metabolic_age", metabolic_age(sex, age, height, weight_kg, impedance), METHOD, "vendor")
    # Neither variant is proven on a datum that tells them apart, so neither is an exact match.
    visceral = visceral_fat(sex, age, height, weight_kg, options.visceral_fat)
    sheet.put("visceral_fat", visceral, METHOD, "vendor-approximate")
    bone = bone_mass_kg(sex, lbm)
    sheet.put("bone_mass_kg", bone, METHOD, "vendor")
    literature.skeletal_muscle(sheet, profile, impedance)
    if fat is None:
        sheet.refuse_all(
            ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "water_pct", "muscle_mass_kg", "protein_pct",
             "body_score"),
            f"the calibration offset {options.fat_offset_pct:+g} moves body fat out of 0–75 %",
        )
        return sheet

    confidence = fat_confidence(options, "vendor")
    water = water_pct(fat)
    muscle = muscle_mass_kg(sex, weight_kg, fat, bone)
    protein = protein_pct(weight_kg, muscle, water)
    sheet.put("body_fat_pct", fat, METHOD, confidence)
    sheet.put("fat_mass_kg", weight_kg * fat / 100, METHOD, confidence)
    sheet.put("fat_free_mass_kg", weight_kg - weight_kg * fat / 100, METHOD, confidence)
    sheet.put("water_pct", water, METHOD, confidence)
    sheet.put("muscle_mass_kg", muscle, METHOD, confidence)
    sheet.put("protein_pct", protein, METHOD, confidence)
    score = body_score(
        sex, age, height, weight_kg, fat_pct=fat, muscle_kg=muscle, water=water, visceral=visceral,
        bone_kg=bone, bmr=sheet.metrics["bmr_kcal"].value, protein=protein,
    )
    sheet.put("body_score", score, METHOD, "vendor-approximate")
    sheet.put("body_type", body_type(sex, age, height, fat, muscle), METHOD, "vendor-approximate")
    sheet.put("fat_mass_to_ideal_kg", fat_mass_to_ideal_kg(sex, age, weight_kg, fat), METHOD, confidence)
    return sheet
