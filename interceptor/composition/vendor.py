"""Values a scale or a vendor cloud computed itself (Withings, an imported Zepp or Mi Fitness record).

Withings' algorithms are undocumented (body-composition.md §8), so the only faithful thing to do
with its numbers is to show them as they came, labelled `vendor`, and derive locally only what
follows by definition: fat mass and fat-free mass from a fat % (or a fat % from a mass), labelled
`vendor-derived`, and BMR from fat-free mass when the vendor gave none (§11.4).
"""

from __future__ import annotations

from collections.abc import Mapping

from interceptor.composition import literature
from interceptor.composition.core import Options, Sheet, calibrated_fat, fat_confidence
from interceptor.model import METRIC_UNITS

METHOD = "vendor"
# A value we worked out from the vendor's own by definition (fat % from fat mass and weight, FFMI
# from fat-free mass): exact, but not a number the vendor gave, so not labelled as the vendor's.
DERIVED = "vendor-derived"

# Computed for every weigh-in whatever the vendor said; not the vendor's to leave out.
ANTHROPOMETRIC = frozenset({"bmi", "ideal_weight_kg", "bmr_kcal", "ffmi"})
# The rest, refused when the vendor left them out: a fixed tuple rather than set arithmetic on every
# weigh-in (the engine puts refusals in vocabulary order anyway).
_NOT_ANTHROPOMETRIC = tuple(name for name in METRIC_UNITS if name not in ANTHROPOMETRIC)


def compose(weight_kg: float, vendor_metrics: Mapping[str, float], options: Options) -> Sheet:
    sheet = Sheet()
    for name, value in vendor_metrics.items():
        sheet.put(name, value, METHOD, "vendor")

    fat = _fat_pct(weight_kg, vendor_metrics)
    if fat is not None and options.calibrated:
        fat = calibrated_fat(fat, options)
        if fat is None:
            reason = f"the calibration offset {options.fat_offset_pct:+g} moves body fat out of 0–75 %"
            sheet.refuse_all(("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg"), reason)
            return sheet
    if fat is not None:
        # Uncalibrated, the vendor's own numbers stay as they came; only missing ones are derived.
        confidence = fat_confidence(options, "vendor")
        derived = {
            "body_fat_pct": fat,
            "fat_mass_kg": weight_kg * fat / 100,
            "fat_free_mass_kg": weight_kg - weight_kg * fat / 100,
        }
        for name, value in derived.items():
            if options.calibrated or name not in vendor_metrics:
                sheet.put(name, value, METHOD if name in vendor_metrics else DERIVED, confidence)
    if "bmr_kcal" not in vendor_metrics and "fat_free_mass_kg" in sheet.metrics:
        bmr = literature.FFM_BMR_EQUATIONS[options.ffm_bmr_equation]
        ffm = sheet.metrics["fat_free_mass_kg"].value
        sheet.put("bmr_kcal", bmr(ffm), options.ffm_bmr_equation, fat_confidence(options, "literature"))
    for name in _NOT_ANTHROPOMETRIC:
        if name not in sheet.metrics:
            sheet.refuse(name, "the vendor did not report it, and it does not follow from what it reported")
    return sheet


def _fat_pct(weight_kg: float, vendor_metrics: Mapping[str, float]) -> float | None:
    """The vendor's fat %, given directly or as fat mass or fat-free mass (Withings types 6, 8, 5)."""
    if "body_fat_pct" in vendor_metrics:
        return vendor_metrics["body_fat_pct"]
    if "fat_mass_kg" in vendor_metrics:
        return 100 * vendor_metrics["fat_mass_kg"] / weight_kg
    if "fat_free_mass_kg" in vendor_metrics:
        return 100 * (1 - vendor_metrics["fat_free_mass_kg"] / weight_kg)
    return None
