"""How numbers and moments read on the household page: in the person's unit, in the household's
timezone, and in words rather than codes ("estimated from a published equation", not "literature").

Sans-I/O: every function takes `now` and the zone it needs; the page and its JSON API call them with
the same values, so what the API says and what the page shows cannot drift apart.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from interceptor.model import METRIC_UNITS
from interceptor.units import KG_PER_LB, LB_PER_STONE

MINUS = "\u2212"

# docs/composition.md explains each; the page says in a few words how far a number can be trusted.
CONFIDENCE_WORDS = {
    "vendor": "as the scale's maker computes it",
    "vendor-approximate": "close to the scale maker's app",
    "unverified": "not checked against the scale maker's app",
    "literature": "estimated with a published equation",
    "anthropometric": "from height and weight alone",
    "calibrated": "calibrated to your reference measurement",
}

METHOD_WORDS = {
    "vendor": "the scale's own value",
    "vendor-derived": "worked out from the scale's own values",
    "xiaomi": "Xiaomi formula",
    "s400": "Xiaomi S400 formula",
    "literature": "published equations",
    "deurenberg": "Deurenberg 1991 (no impedance)",
    "deurenberg1991": "Deurenberg 1991 (no impedance)",
    "anthropometric": "height and weight",
    "bmi": "weight ÷ height²",
    "sun2003": "Sun 2003",
    "janssen2000": "Janssen 2000",
    "hanai1997": "Hanai 1997",
    "mifflin1990": "Mifflin-St Jeor 1990",
    "cunningham1991": "Cunningham 1991",
    "cunningham1980": "Cunningham 1980",
    "lee2015": "Lee 2015",
    "lukaski1985": "Lukaski 1985",
    "harris_benedict1919": "Harris-Benedict 1919",
    "roza_shizgal1984": "Roza-Shizgal 1984",
    "schofield1985": "Schofield 1985",
}

# Metrics this project computes by one formula from another: FFMI is stored with the method of the
# fat-free mass it came from (docs/composition.md: "inherits its method"), which for a vendor's value
# would read "the scale's own value"; the page says the formula instead, as BMI's "weight ÷ height²".
FORMULA_WORDS = {
    "ffmi": "fat-free mass ÷ height²",
    "ffmi_normalised": "FFMI + 6.1 × (1.8 m − height)",
}

METRIC_LABELS = {
    "bmi": "BMI",
    "body_fat_pct": "Body fat",
    "fat_mass_kg": "Fat mass",
    "fat_free_mass_kg": "Fat-free mass",
    "muscle_mass_kg": "Muscle",
    "skeletal_muscle_mass_kg": "Skeletal muscle",
    "water_pct": "Water",
    "bone_mass_kg": "Bone",
    "visceral_fat": "Visceral fat",
    "bmr_kcal": "Basal metabolism",
    "metabolic_age": "Metabolic age",
    "protein_pct": "Protein",
    "ffmi": "FFMI",
    "ideal_weight_kg": "Ideal weight",
    "body_score": "Body score",
    "extracellular_water_kg": "Extracellular water",
    "intracellular_water_kg": "Intracellular water",
    "body_type": "Body type",
    "fat_mass_to_ideal_kg": "Fat to lose",
    "ffmi_normalised": "FFMI (at 1.8 m)",
}


def in_unit(kilograms: float, unit: str) -> float:
    """The number a chart plots: kilograms, or pounds for people who read pounds or stones."""
    return kilograms if unit == "kg" else kilograms / KG_PER_LB


def weight(kilograms: float, unit: str) -> str:
    """72.4 kg, 159.6 lb, 11 st 5.6 lb: one decimal, below every household scale's resolution."""
    if unit == "kg":
        return f"{kilograms:.1f} kg"
    pounds = kilograms / KG_PER_LB
    if unit == "lb":
        return f"{pounds:.1f} lb"
    tenths = round(pounds * 10)  # round once, so 13.96 lb reads "1 st 0.0 lb", never "0 st 14.0 lb"
    stones, rest = divmod(tenths, LB_PER_STONE * 10)
    return f"{stones} st {rest / 10:.1f} lb" if stones else f"{rest / 10:.1f} lb"


def axis_weight(value: float, unit: str) -> str:
    """A chart tick (value in `in_unit`): 72 kg, 160 lb, 11 st 6."""
    if unit == "st":
        stones, pounds = divmod(round(value), LB_PER_STONE)
        return f"{stones} st {pounds}"
    return f"{value:g} {unit}"


def change(kilograms: float, unit: str) -> str:
    """A signed change: −0.3 kg, +1.2 lb (people who read stones count small changes in pounds)."""
    value = round(in_unit(kilograms, unit), 1)
    if value == 0:
        return f"±0.0 {'kg' if unit == 'kg' else 'lb'}"
    sign = "+" if value > 0 else MINUS
    return f"{sign}{abs(value):.1f} {'kg' if unit == 'kg' else 'lb'}"


def metric_value(name: str, value: float, unit: str) -> str:
    """A metric in the person's unit: masses follow their weight unit (pounds for stones)."""
    if name.endswith("_kg"):
        return f"{in_unit(value, unit):.1f} {'kg' if unit == 'kg' else 'lb'}"
    if name == "bmr_kcal":
        return f"{value:.0f} kcal/day"
    if name in ("metabolic_age", "visceral_fat", "body_score", "body_type"):
        return f"{value:.0f}" + (" years" if name == "metabolic_age" else "")
    return f"{value:.1f} {METRIC_UNITS.get(name, '')}".rstrip()


def method(name: str) -> str:
    return METHOD_WORDS.get(name, name)


def metric_method(metric: str, name: str) -> str:
    """How `metric` was had: its formula when we derive it from another metric, else its method's words."""
    return FORMULA_WORDS.get(metric) or method(name)


def confidence(name: str) -> str:
    return CONFIDENCE_WORDS.get(name, name)


def label(name: str) -> str:
    return METRIC_LABELS.get(name, name.replace("_", " "))


def moment(when: datetime, now: datetime, zone: ZoneInfo, *, clock: bool = True) -> str:
    """"this morning 07:12", "yesterday evening 21:40", "Tuesday 07:05", "3 March 07:12", "3 March 2024";
    without `clock`: "this morning", "yesterday", "Tuesday", "3 March"."""
    local = when.astimezone(zone)
    today = now.astimezone(zone).date()
    time = f" {local:%H:%M}" if clock else ""
    days = (today - local.date()).days
    date_text = f"{local.day} {local:%B}"
    if days < 0:  # a scale whose clock runs ahead: say the date, never "ago"
        return f"{date_text}{time}"
    part = "morning" if local.hour < 12 else "afternoon" if local.hour < 18 else "evening"
    if days == 0:
        return (f"tonight{time}" if part == "evening" and local.hour >= 21 else f"this {part}{time}")
    if days == 1:
        return f"yesterday {part}{time}" if clock else "yesterday"
    if days < 7:
        return f"{local:%A}{time}"
    if local.year == today.year or days < 180:
        return f"{date_text}{time}"
    return f"{date_text} {local.year}"


def ago(seconds: float) -> str:
    """How long: "5 minutes", "3 hours", "2 days", for "last seen … ago"."""
    if seconds < 90:
        return "a minute" if seconds >= 45 else "moments"
    minutes = seconds / 60
    if minutes < 90:
        return f"{minutes:.0f} minutes"
    hours = minutes / 60
    if hours < 36:
        return f"{hours:.0f} hours"
    return f"{hours / 24:.0f} days"


def day(when: datetime, zone: ZoneInfo) -> str:
    """A table's date: "Mon 3 Mar 2025 07:12" (unambiguous in any locale)."""
    local = when.astimezone(zone)
    return f"{local.strftime('%a')} {local.day} {local.strftime('%b %Y %H:%M')}"

