"""The values every composition method shares: who stood on the scale, the tuning options, the result.

Methods are pure: they get a weight, the readings they need and a `Profile`, and return a `Sheet` of
metrics and refusals. Nothing here reads a clock or a file, so a weigh-in recomputed years later (a
changed height, a re-attributed measurement) gives the same numbers as the day it was taken.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal, get_args

from interceptor.model import METRIC_UNITS, Confidence, Metric

Sex = Literal["male", "female"]
VisceralVariant = Literal["holtek", "legacy"]
BmrEquation = Literal["mifflin1990", "harris_benedict1919", "roza_shizgal1984", "schofield1985"]
FfmEquation = Literal["sun2003", "lee2015", "lukaski1985"]
TbwEquation = Literal["sun2003", "lukaski_bolonchuk1988", "kushner1992"]
FfmBmrEquation = Literal["cunningham1991", "cunningham1980"]


# Bioimpedance of a standing adult or child lies well inside this band; a value outside it is a bad
# electrode contact or a decoder sentinel, not a body (body-composition.md §11.5; openScale's S400
# validation uses the same band).
IMPEDANCE_RANGE_OHM = (200.0, 1500.0)

# Beyond these BMIs no published equation here was fitted on anyone like the person (openScale's
# S400 gate). The vendor formulas keep only the lower bound: near BMI 12 a body is starving, so a
# lower value means the weigh-in is not this person's (a child or a bag on a parent's profile),
# while people above 60 do use the vendor apps and get numbers from them.
BMI_RANGE = (12.0, 60.0)

# The vendor formulas (Zepp's, and the S400 model built on them) were reverse engineered from adults
# and are checked against app values of adults only (ages 25–62 on the public records). For a small
# body their constant terms dominate: a 10-year-old of 32 kg gets the Zepp formula's 5 % floor. So
# below this age they are refused, as openScale's S400 pipeline refuses (body-composition.md §4.1).
ADULT_AGE_YEARS = 18

# jdelaire/scale bounds its personal fat offset to ±15 points; a larger gap means a wrong profile
# (height, age, sex) rather than a scale that needs calibrating.
MAX_FAT_OFFSET_PCT = 15.0


_SEXES = get_args(Sex)


@dataclass(frozen=True)
class Profile:
    """The person as the formulas need them, at the time of the weigh-in.

    Age is a float because the pipeline computes it from a birth date; vendor-parity methods use
    the completed years (`whole_years`), as the vendor apps do.
    """

    sex: Sex
    age_years: float
    height_cm: float

    def __post_init__(self) -> None:
        if self.sex not in _SEXES:
            raise ValueError(f"sex must be 'male' or 'female', not {self.sex!r}")
        if not (math.isfinite(self.age_years) and 0 < self.age_years < 130):
            raise ValueError(f"age must be between 0 and 130 years, not {self.age_years}")
        if not (math.isfinite(self.height_cm) and 50 <= self.height_cm <= 250):
            raise ValueError(f"height must be between 50 and 250 cm, not {self.height_cm}")

    @property
    def whole_years(self) -> int:
        return math.floor(self.age_years)

    @property
    def height_m(self) -> float:
        return self.height_cm / 100

    @property
    def is_male(self) -> bool:
        return self.sex == "male"


_CHOICES: dict[str, object] = {
    "visceral_fat": VisceralVariant,
    "bmr_equation": BmrEquation,
    "ffm_equation": FfmEquation,
    "tbw_equation": TbwEquation,
    "ffm_bmr_equation": FfmBmrEquation,
}
_ALLOWED: dict[str, tuple[str, ...]] = {name: get_args(alias) for name, alias in _CHOICES.items()}


@dataclass(frozen=True)
class Options:
    """Choices a person or an operator may make; the defaults are the best match we know."""

    # Visceral fat for the xiaomi method: "holtek" reads closer to the Zepp app (user reports in
    # bodymiscale #27 and openScale #880); "legacy" is the original prototux reverse engineering.
    visceral_fat: VisceralVariant = "holtek"
    # BMR from weight, height and age, used when the method has no BMR of its own.
    bmr_equation: BmrEquation = "mifflin1990"
    # Equations for the `literature` method (single impedance).
    ffm_equation: FfmEquation = "sun2003"
    tbw_equation: TbwEquation = "sun2003"
    # BMR from fat-free mass, for methods that know FFM but have no vendor BMR.
    ffm_bmr_equation: FfmBmrEquation = "cunningham1991"
    # Per-person calibration: points added to every body-fat % (see `calibration_offset`).
    fat_offset_pct: float = 0.0

    def __post_init__(self) -> None:
        for name, allowed in _ALLOWED.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        if not (math.isfinite(self.fat_offset_pct) and abs(self.fat_offset_pct) <= MAX_FAT_OFFSET_PCT):
            raise ValueError(
                f"fat offset must be within ±{MAX_FAT_OFFSET_PCT:g} points, not {self.fat_offset_pct}; "
                "a larger gap means the profile (height, age, sex) is wrong"
            )

    @property
    def calibrated(self) -> bool:
        return self.fat_offset_pct != 0.0


# What a weigh-in is composed with unless told otherwise: made and checked once.
DEFAULT_OPTIONS = Options()


@dataclass(frozen=True)
class Composition:
    """What `compose` found: metrics by name, and why each expected metric is missing."""

    metrics: dict[str, Metric]
    refusals: dict[str, str]
    method: str

    def as_json(self) -> dict[str, object]:
        return {
            "metrics": {name: metric.as_json() for name, metric in self.metrics.items()},
            "refusals": dict(self.refusals),
        }


@dataclass
class Sheet:
    """Metrics and refusals of one method run; a later `put` of the same name wins."""

    metrics: dict[str, Metric] = field(default_factory=dict)
    refusals: dict[str, str] = field(default_factory=dict)

    def put(self, name: str, value: float, method: str, confidence: Confidence) -> None:
        unit = METRIC_UNITS.get(name)
        if unit is None:
            raise KeyError(f"unknown metric name {name!r}")
        if not math.isfinite(value):
            self.refuse(name, f"{method} gave a non-finite value")
            return
        self.metrics[name] = Metric(float(value), unit, method, confidence)
        self.refusals.pop(name, None)

    def refuse(self, name: str, reason: str) -> None:
        self.metrics.pop(name, None)
        self.refusals[name] = reason

    def refuse_all(self, names: tuple[str, ...], reason: str) -> None:
        for name in names:
            self.refuse(name, reason)

    def update(self, other: Sheet) -> None:
        """Lay `other` over this sheet: its metrics replace ours, its refusals only fill gaps."""
        for name, metric in other.metrics.items():
            self.metrics[name] = metric
            self.refusals.pop(name, None)
        for name, reason in other.refusals.items():
            if name not in self.metrics:
                self.refusals[name] = reason


def bmi(weight_kg: float, profile: Profile) -> float:
    return weight_kg / profile.height_m**2


def impedance_problem(name: str, value: float | None) -> str | None:
    """Why an impedance cannot be used, or None when it can."""
    low, high = IMPEDANCE_RANGE_OHM
    if value is None:
        return f"no {name} in this weigh-in (the scale measured weight only)"
    if not (math.isfinite(value) and low <= value <= high):
        return f"{name} {value:g} Ω is outside {low:g}–{high:g} Ω (poor foot contact, socks, or a sentinel)"
    return None


def body_problem(weight_kg: float, profile: Profile, *, vendor: bool = False) -> str | None:
    """Why no body-composition equation applies to this body, or None (see BMI_RANGE)."""
    value = bmi(weight_kg, profile)
    low, high = BMI_RANGE
    if value < low:
        return f"BMI {value:.1f} is below {low:g}: this weigh-in is unlikely to be this person's"
    if value > high and not vendor:
        return f"BMI {value:.1f} is above {high:g}, beyond every published equation's population"
    return None


def minor_problem(profile: Profile, formulas: str, *, plural: bool = True) -> str | None:
    """Why adult-only vendor `formulas` ("the Zepp formulas"; `plural=False` for "the S400 model")
    do not apply, or None (see ADULT_AGE_YEARS). The sentence is shown to users: verbs agree."""
    if profile.whole_years >= ADULT_AGE_YEARS:
        return None
    are, they, return_ = ("are", "they", "return") if plural else ("is", "it", "returns")
    return (
        f"{formulas} {are} made for and checked on adults ({ADULT_AGE_YEARS} and over), not age "
        f"{profile.whole_years}: on a child {they} {return_} {'their' if plural else 'its'} own limits, "
        "not a measurement"
    )


def fat_confidence(options: Options, base: Confidence) -> Confidence:
    """Metrics that follow from body-fat % are `calibrated` once a personal offset is applied."""
    return "calibrated" if options.calibrated else base


def calibrated_fat(raw_fat_pct: float, options: Options) -> float | None:
    """The fat % after the personal offset, or None when the offset pushes it out of (0, 75]."""
    fat = raw_fat_pct + options.fat_offset_pct
    return fat if 0 < fat <= 75 else None
