"""`compose`: one weigh-in and one person in, every metric we can stand behind out.

The engine picks the method the scale implies, lays its metrics over the anthropometric ones,
refuses anything outside physical bounds, and says why each missing metric is missing, so the
pipeline can store the reason next to the weigh-in instead of a silent gap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from interceptor.composition import anthropometric, literature, s400, vendor, xiaomi
from interceptor.composition.core import (
    DEFAULT_OPTIONS,
    Composition,
    Options,
    Profile,
    Sheet,
)
from interceptor.model import METRIC_NAMES, METRIC_UNITS, Metric

MethodFunction = Callable[[float, Mapping[str, float], Profile, Options], Sheet]


_WEIGHT_ONLY = "no impedance in this weigh-in (the scale measured weight only)"
_WEIGHT_ONLY_REFUSALS = dict.fromkeys(
    ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "water_pct", "muscle_mass_kg", "skeletal_muscle_mass_kg",
     "bone_mass_kg", "visceral_fat", "metabolic_age", "protein_pct", "body_score"),
    _WEIGHT_ONLY,
)


def _anthropometric_only(weight_kg: float, readings: Mapping[str, float], profile: Profile, options: Options) -> Sheet:
    """A weight-only weigh-in: nothing beyond the anthropometric metrics, and say so."""
    del weight_kg, readings, profile, options  # nothing to compute beyond the anthropometric sheet
    return Sheet(refusals=dict(_WEIGHT_ONLY_REFUSALS))


# Method names accepted by `compose(method=...)` and `interceptor compute --method`.
METHODS: dict[str, MethodFunction] = {
    "xiaomi": xiaomi.compose,
    "s400": s400.compose,
    "literature": literature.compose,
    "deurenberg": literature.compose_without_impedance,
    "anthropometric": _anthropometric_only,
}
VENDOR = "vendor"
METHOD_NAMES = (*METHODS, VENDOR)

# Masses that are part of the body and so lie strictly between zero and the body weight.
_MASSES = frozenset({
    "fat_mass_kg",
    "fat_free_mass_kg",
    "muscle_mass_kg",
    "skeletal_muscle_mass_kg",
    "bone_mass_kg",
    "extracellular_water_kg",
    "intracellular_water_kg",
})
_PERCENTAGES = frozenset({"water_pct", "protein_pct"})
_FAT_TRIO = ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg")
# The Zepp app caps body fat at 75 % (body-composition.md §3.2), and shows that cap; it is kept.
MAX_FAT_PCT = 75.0

def choose_method(readings: Mapping[str, float], vendor_metrics: Mapping[str, float] | None = None) -> str:
    """The method a weigh-in implies: vendor values first (they are what the app showed), then the
    scale's own impedance layout, then Withings (no usable impedance), then weight only."""
    if vendor_metrics:
        return VENDOR
    if "impedance_high_ohm" in readings or "impedance_low_ohm" in readings:
        return "s400"
    if "impedance_ohm" in readings:
        return "xiaomi"
    if "withings_type16" in readings:
        return "deurenberg"
    return "anthropometric"


def compose(
    readings: Mapping[str, float],
    profile: Profile,
    *,
    method: str | None = None,
    vendor_metrics: Mapping[str, float] | None = None,
    options: Options | None = None,
) -> Composition:
    """Body composition of one weigh-in for one person.

    Raises ValueError for a caller's mistake (no weight, unknown method or vendor metric name);
    everything the body or the scale can cause becomes a refusal instead.
    """
    options = options or DEFAULT_OPTIONS
    weight = readings.get("weight_kg")
    if weight is None or not (math.isfinite(weight) and weight > 0):
        raise ValueError(f"a weigh-in needs a positive weight_kg, got {weight!r}")
    chosen = method or choose_method(readings, vendor_metrics)
    if chosen not in METHOD_NAMES:
        raise ValueError(f"unknown method {chosen!r}; known: {', '.join(METHOD_NAMES)}")

    sheet = anthropometric.compose(weight, profile, options)
    if chosen == VENDOR:
        unknown = sorted(set(vendor_metrics or {}) - METRIC_NAMES)
        if unknown:
            raise ValueError(f"unknown vendor metric names {unknown}; known: {sorted(METRIC_UNITS)}")
        if not vendor_metrics:
            sheet.refuse("body_fat_pct", "the vendor method was asked for, but the weigh-in carries no vendor values")
        sheet.update(vendor.compose(weight, vendor_metrics or {}, options))
    else:
        sheet.update(METHODS[chosen](weight, readings, profile, options))
    _refuse_unphysical(sheet, weight)
    _put_ffmi(sheet, profile, options)
    return _in_vocabulary_order(sheet, chosen)


def _not_estimated(method: str) -> str:
    return f"the {method} method does not estimate it"


_NOT_ESTIMATED = {name: _not_estimated(name) for name in METHOD_NAMES}


def _in_vocabulary_order(sheet: Sheet, chosen: str) -> Composition:
    """Metrics and refusals in vocabulary order, the order every output shows them in; every metric
    is shown or explained (a metric the method has no word about: it does not estimate it)."""
    metrics, refusals = sheet.metrics, sheet.refusals
    ordered_metrics: dict[str, Metric] = {}
    ordered_refusals: dict[str, str] = {}
    not_estimated = _NOT_ESTIMATED.get(chosen) or _not_estimated(chosen)
    refused = 0
    for name in METRIC_UNITS:
        metric = metrics.get(name)
        if metric is not None:
            ordered_metrics[name] = metric
        reason = refusals.get(name)
        if reason is not None:
            ordered_refusals[name] = reason
            refused += 1
        elif metric is None:
            ordered_refusals[name] = not_estimated
    if refused < len(refusals):  # refusals of names beyond the vocabulary come last
        ordered_refusals.update((name, reason) for name, reason in refusals.items() if name not in METRIC_UNITS)
    return Composition(metrics=ordered_metrics, refusals=ordered_refusals, method=chosen)


def _refuse_unphysical(sheet: Sheet, weight_kg: float) -> None:
    """The last guard: no method, vendor or cap may show a body part heavier than the body."""
    for name, metric in list(sheet.metrics.items()):
        value = metric.value
        if name in _MASSES and not 0 < value < weight_kg:
            sheet.refuse(name, f"{metric.method} gave {value:.2f} kg, not between 0 and the body weight")
        elif name in _PERCENTAGES and not 0 < value < 100:
            sheet.refuse(name, f"{metric.method} gave {value:.2f} %, not between 0 and 100 %")
        elif name == "body_fat_pct" and not 0 < value <= MAX_FAT_PCT:
            sheet.refuse(name, f"{metric.method} gave {value:.2f} % fat, not between 0 and {MAX_FAT_PCT:g} %")
    # Fat %, fat mass and fat-free mass are one fact in three units: shown together or not at all.
    refused = [name for name in _FAT_TRIO if name in sheet.refusals]
    if refused:
        for name in _FAT_TRIO:
            if name in sheet.metrics:
                sheet.refuse(name, f"follows from {refused[0]}: {sheet.refusals[refused[0]]}")


def _put_ffmi(sheet: Sheet, profile: Profile, options: Options) -> None:
    """FFMI whenever fat-free mass is known, with the method and confidence of that FFM; from a
    vendor's FFM it is `vendor-derived`, as no vendor gives an FFMI: we computed it."""
    ffm = sheet.metrics.get("fat_free_mass_kg")
    if ffm is None:
        reason = sheet.refusals.get("fat_free_mass_kg", "no fat-free mass for this weigh-in")
        sheet.refuse_all(("ffmi", "ffmi_normalised"), f"needs fat-free mass: {reason}")
        return
    method = vendor.DERIVED if ffm.method == vendor.METHOD else ffm.method
    sheet.put("ffmi", anthropometric.ffmi(ffm.value, profile), method, ffm.confidence)
    sheet.put("ffmi_normalised", anthropometric.normalised_ffmi(ffm.value, profile), method, ffm.confidence)


def calibration_offset(reference_fat_pct: float, uncalibrated: Composition) -> float:
    """Points to add to this person's body-fat % so the reference weigh-in reads as the reference.

    `reference_fat_pct` is what the vendor app or a DEXA scan said about a weigh-in; `uncalibrated`
    is our composition of that same weigh-in, computed without an offset. Pass the result as
    `Options(fat_offset_pct=...)` for later weigh-ins; everything that follows from fat % (fat and
    fat-free mass, FFMI, Zepp water/muscle/protein, S400 BMR) follows the offset and is labelled
    `calibrated`. Raises ValueError when there is nothing to calibrate or the gap is implausible.
    """
    if not (math.isfinite(reference_fat_pct) and 0 < reference_fat_pct <= MAX_FAT_PCT):
        raise ValueError(f"a reference body fat must be between 0 and {MAX_FAT_PCT:g} %, not {reference_fat_pct}")
    fat = uncalibrated.metrics.get("body_fat_pct")
    if fat is None:
        reason = uncalibrated.refusals.get("body_fat_pct", "no body fat")
        raise ValueError(f"the reference weigh-in has no body fat to calibrate against: {reason}")
    if fat.confidence == "calibrated":
        raise ValueError("the reference weigh-in was composed with an offset already; compose it without one")
    offset = reference_fat_pct - fat.value
    Options(fat_offset_pct=offset)  # the same bound every later compose will enforce
    return offset
