"""Weights as a person reads them: kilograms, pounds, or stones and pounds.

Values travel in SI everywhere (DESIGN.md); only what is printed or rendered for a person is
converted, with the household's or the person's unit.
"""

from __future__ import annotations

KG_PER_LB = 0.45359237  # exact, by the 1959 international yard and pound agreement
LB_PER_STONE = 14


def weight_text(kilograms: float | None, unit: str) -> str:
    if kilograms is None:
        return ""
    if unit == "lb":
        return f"{kilograms / KG_PER_LB:.1f} lb"
    if unit == "st":
        stones, pounds = divmod(kilograms / KG_PER_LB, LB_PER_STONE)
        return f"{int(stones)} st {pounds:.1f} lb"
    return f"{kilograms:.2f} kg"
