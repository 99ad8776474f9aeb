"""Fit the S400 method's constants on the public app pairings and print their leave-one-out error.

    .venv/bin/python scripts/fit_s400.py            # the tables for docs/composition.md
    .venv/bin/python scripts/fit_s400.py --json     # the same numbers for tests

Reads tests/fixtures/s400_pairs.json. Every error in the cross-validation table is an honest
prediction: each pair is predicted with FAT_SCALE and BONE_FRACTION fitted on the *other* pairs
(leave-one-out), never on itself. The constants shipped in interceptor/composition/s400.py are the
fit on all pairs, rounded to four decimals; tests/composition/test_s400_fit.py checks both.

The model is the production code's: `s400.zepp_fat_pct` times a factor, fat-free mass W·(1 − fat),
bone a fraction of it. Baselines in the same table: the previous method (the Zepp formula, clamped,
on the smaller band) and the Zepp formula on the with-weight band unscaled.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from interceptor.composition import literature, s400, xiaomi
from interceptor.composition.core import Profile

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "s400_pairs.json"

# The goal of issue 17, on cross-validated predictions of real app values.
GOAL_MEAN_BIAS_PCT = 1.0
GOAL_MAX_ERROR_PCT = 2.0
GOAL_MAX_FFM_ERROR_KG = 1.0
DECIMALS = 4


@dataclass(frozen=True)
class Pair:
    id: str
    profile: Profile
    weight_kg: float
    with_weight_ohm: float
    without_weight_ohm: float | None
    app: dict[str, float]

    @property
    def app_ffm(self) -> float:
        return self.weight_kg * (1 - self.app["body_fat_pct"] / 100)

    @property
    def zepp(self) -> float:
        return s400.zepp_fat_pct(self.profile, self.weight_kg, self.with_weight_ohm)


def load(path: Path = FIXTURE) -> tuple[list[Pair], list[dict[str, Any]]]:
    document = json.loads(path.read_text(encoding="utf-8"))
    pairs = [
        Pair(item["id"], Profile(item["profile"]["sex"], item["profile"]["age"], item["profile"]["height_cm"]),
             item["weight_kg"], item["impedance_with_weight_ohm"], item["impedance_without_weight_ohm"], item["app"])
        for item in document["pairs"]
    ]
    return pairs, document["records"]


def through_origin(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of y = k·x."""
    return sum(x * y for x, y in zip(xs, ys, strict=True)) / sum(x * x for x in xs)


def fat_scale(pairs: list[Pair]) -> float:
    return through_origin([pair.zepp for pair in pairs], [pair.app["body_fat_pct"] for pair in pairs])


def bone_fraction(pairs: list[Pair]) -> float:
    shown = [pair for pair in pairs if "bone_mass_kg" in pair.app]
    return through_origin([pair.app_ffm for pair in shown], [pair.app["bone_mass_kg"] for pair in shown])


def other_ffm_fraction(pairs: list[Pair], records: list[dict[str, Any]]) -> float:
    """Mean share of fat-free mass that is neither water, protein nor bone, where the app shows all."""
    shares = []
    shown = [(pair.weight_kg, pair.app) for pair in pairs] + [(item["weight_kg"], item["app"]) for item in records]
    for weight, app in shown:
        protein = app.get("protein_kg", weight * app.get("protein_pct", math.nan) / 100)
        if "water_pct" in app and "bone_mass_kg" in app and math.isfinite(protein):
            ffm = weight * (1 - app["body_fat_pct"] / 100)
            shares.append(1 - (weight * app["water_pct"] / 100 + protein + app["bone_mass_kg"]) / ffm)
    return sum(shares) / len(shares)


def previous_method(pair: Pair) -> float:
    """What the s400 method said before issue 17: the clamped Zepp fat on the smaller band."""
    smaller = min(z for z in (pair.with_weight_ohm, pair.without_weight_ohm) if z is not None)
    age, height = pair.profile.whole_years, pair.profile.height_cm
    lbm = xiaomi.lbm_coefficient(height, pair.weight_kg, smaller, age)
    return xiaomi.body_fat_pct(pair.profile.sex, age, height, pair.weight_kg, lbm)


def cross_validate(pairs: list[Pair]) -> list[dict[str, Any]]:
    rows = []
    for pair in pairs:
        others = [other for other in pairs if other is not pair]
        fat = fat_scale(others) * pair.zepp
        ffm = pair.weight_kg * (1 - fat / 100)
        row: dict[str, Any] = {
            "id": pair.id, "sex": pair.profile.sex, "age": pair.profile.whole_years,
            "height_cm": pair.profile.height_cm, "weight_kg": pair.weight_kg,
            "with_weight_ohm": pair.with_weight_ohm, "without_weight_ohm": pair.without_weight_ohm,
            "app_fat_pct": pair.app["body_fat_pct"], "predicted_fat_pct": fat,
            "fat_error_pct": fat - pair.app["body_fat_pct"], "ffm_error_kg": ffm - pair.app_ffm,
            "previous_error_pct": previous_method(pair) - pair.app["body_fat_pct"],
            "zepp_error_pct": pair.zepp - pair.app["body_fat_pct"],
        }
        if "bone_mass_kg" in pair.app:
            row["bone_error_kg"] = bone_fraction(others) * ffm - pair.app["bone_mass_kg"]
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    errors = [row[key] for row in rows if key in row]
    return {
        "n": len(errors),
        "mean_bias": sum(errors) / len(errors),
        "rmse": math.sqrt(sum(error * error for error in errors) / len(errors)),
        "max_abs": max(abs(error) for error in errors),
    }


def unreproduced(pairs: list[Pair]) -> list[dict[str, Any]]:
    """What the app shows that the method refuses or labels literature, next to the nearest formula."""
    rows = []
    for pair in pairs:
        sex, age, height, weight = pair.profile.sex, pair.profile.whole_years, pair.profile.height_cm, pair.weight_kg
        row: dict[str, Any] = {"id": pair.id}
        if "visceral_fat" in pair.app:
            row["visceral_fat"] = (pair.app["visceral_fat"], xiaomi.visceral_fat_holtek(sex, age, height, weight))
        if "metabolic_age" in pair.app:
            row["metabolic_age"] = (pair.app["metabolic_age"],
                                    xiaomi.metabolic_age(sex, age, height, weight, pair.with_weight_ohm))
        if "water_pct" in pair.app:
            tbw = literature.tbw_sun2003(pair.profile, weight, pair.with_weight_ohm)
            row["water_pct"] = (pair.app["water_pct"], 100 * tbw / weight)
        rows.append(row)
    return rows


def report(path: Path = FIXTURE) -> dict[str, Any]:
    pairs, records = load(path)
    rows = cross_validate(pairs)
    fat = summary(rows, "fat_error_pct")
    ffm = summary(rows, "ffm_error_kg")
    return {
        "constants": {
            "FAT_SCALE": round(fat_scale(pairs), DECIMALS),
            "BONE_FRACTION": round(bone_fraction(pairs), DECIMALS),
            "OTHER_FFM_FRACTION": round(other_ffm_fraction(pairs, records), DECIMALS),
        },
        "cross_validation": rows,
        "summary": {"fat_pct": fat, "ffm_kg": ffm, "bone_kg": summary(rows, "bone_error_kg"),
                    "previous_pct": summary(rows, "previous_error_pct"), "zepp_pct": summary(rows, "zepp_error_pct")},
        "goal_met": (abs(fat["mean_bias"]) <= GOAL_MEAN_BIAS_PCT and fat["max_abs"] <= GOAL_MAX_ERROR_PCT
                     and ffm["max_abs"] <= GOAL_MAX_FFM_ERROR_KG),
        "unreproduced": unreproduced(pairs),
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| pair | sex, age, height, weight | with / without weight (Ω) | app fat % | predicted (LOO) | error "
        "| FFM error (kg) | bone error (kg) | previous method | Zepp unscaled |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["cross_validation"]:
        without = "–" if row["without_weight_ohm"] is None else f"{row['without_weight_ohm']:g}"
        bone = f"{row['bone_error_kg']:+.2f}" if "bone_error_kg" in row else "–"
        lines.append(
            f"| {row['id']} | {row['sex'][0].upper()}, {row['age']}, {row['height_cm']:g}, {row['weight_kg']:g} "
            f"| {row['with_weight_ohm']:g} / {without} | {row['app_fat_pct']:.1f} | {row['predicted_fat_pct']:.2f} "
            f"| {row['fat_error_pct']:+.2f} | {row['ffm_error_kg']:+.2f} | {bone} "
            f"| {row['previous_error_pct']:+.2f} | {row['zepp_error_pct']:+.2f} |"
        )
    names = {"fat_pct": "fat, points", "ffm_kg": "fat-free mass, kg", "bone_kg": "bone, kg",
             "previous_pct": "previous method, points", "zepp_pct": "Zepp unscaled, points"}
    lines += ["", "| leave-one-out | n | mean bias | RMSE | worst |", "|---|---|---|---|---|"]
    for key, name in names.items():
        stats = result["summary"][key]
        lines.append(f"| {name} | {stats['n']} | {stats['mean_bias']:+.2f} | {stats['rmse']:.2f} "
                     f"| {stats['max_abs']:.2f} |")
    constants = ", ".join(f"{name} = {value}" for name, value in result["constants"].items())
    verdict = "met" if result["goal_met"] else "NOT met"
    lines += ["", f"Fitted on all pairs: {constants}. Goal (|bias| ≤ {GOAL_MEAN_BIAS_PCT}, every pair within "
              f"{GOAL_MAX_ERROR_PCT} points, FFM within {GOAL_MAX_FFM_ERROR_KG} kg): {verdict}."]
    lines += ["", "| pair | visceral fat: app / Zepp (Holtek) | body age: app / Zepp | water %: app / Sun 2003 |",
              "|---|---|---|---|"]
    for row in result["unreproduced"]:
        cells = [f"{row[key][0]:g} / {row[key][1]:.1f}" if key in row else "–"
                 for key in ("visceral_fat", "metabolic_age", "water_pct")]
        lines.append(f"| {row['id']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the numbers as JSON")
    parser.add_argument("--fixture", type=Path, default=FIXTURE)
    args = parser.parse_args(argv)
    result = report(args.fixture)
    print(json.dumps(result, indent=2) if args.json else markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
