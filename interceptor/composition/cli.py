"""`interceptor compute`: body composition for numbers typed by hand, for the curious.

A thin shell over `compose`: parse, build the profile and readings, print. A mistake in the
arguments prints one line and exits 2, whether the command runs on its own
(`python -m interceptor.composition.cli`) or under the `interceptor` group.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

import click

from interceptor.composition.core import Options, Profile
from interceptor.composition.engine import METHODS, compose

EXIT_USAGE = 2


class _OneLineErrors(click.Command):
    """Turns click's usage screen into the project's one-line error, keeping exit status 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as error:
            _fail(error.format_message())


def _fail(message: str) -> NoReturn:
    click.echo(f"interceptor compute: {message}", err=True)
    raise click.exceptions.Exit(EXIT_USAGE)


@click.command(name="compute", cls=_OneLineErrors)
@click.option("--sex", type=click.Choice(["male", "female"]), required=True)
@click.option("--age", type=float, required=True, help="years at the weigh-in (fractions allowed)")
@click.option("--height-cm", type=float, required=True)
@click.option("--weight-kg", type=float, required=True)
@click.option("--impedance-ohm", type=float,
              help="the impedance (Mi Scale 2), or one S400 band (alone with --method s400: the one sent with weight)")
@click.option("--impedance2-ohm", type=float, help="the other S400 band; the two are told apart by value")
@click.option("--method", type=click.Choice(list(METHODS)), help="default: what the impedances imply")
@click.option("--visceral-fat", "visceral", type=click.Choice(["holtek", "legacy"]), default="holtek",
              show_default=True, help="visceral-fat variant of the xiaomi method")
@click.option("--fat-offset", type=float, default=0.0, help="personal calibration, body-fat points to add")
@click.option("--format", "output", type=click.Choice(["json", "table"]), default="json", show_default=True)
def compute_command(
    sex: str,
    age: float,
    height_cm: float,
    weight_kg: float,
    impedance_ohm: float | None,
    impedance2_ohm: float | None,
    method: str | None,
    visceral: str,
    fat_offset: float,
    output: str,
) -> None:
    """Print the body composition of one weigh-in, with the method and confidence of every metric."""
    readings = {"weight_kg": weight_kg}
    if impedance2_ohm is not None and impedance_ohm is None:
        _fail("--impedance2-ohm needs --impedance-ohm as well")
    if impedance_ohm is not None and impedance2_ohm is not None:
        # DESIGN.md names dual-frequency impedances by value: the larger is the lower frequency.
        readings["impedance_high_ohm"] = min(impedance_ohm, impedance2_ohm)
        readings["impedance_low_ohm"] = max(impedance_ohm, impedance2_ohm)
    elif impedance_ohm is not None:
        readings["impedance_ohm"] = impedance_ohm
    try:
        profile = Profile(sex=sex, age_years=age, height_cm=height_cm)  # type: ignore[arg-type]
        options = Options(visceral_fat=visceral, fat_offset_pct=fat_offset)  # type: ignore[arg-type]
        composition = compose(readings, profile, method=method, options=options)
    except ValueError as error:
        _fail(str(error))
    if output == "json":
        click.echo(json.dumps(composition.as_json(), indent=2, ensure_ascii=False))
        return
    click.echo(_table(composition.as_json()))


def _table(document: dict[str, Any]) -> str:
    rows = [("metric", "value", "unit", "method", "confidence")]
    for name, metric in document["metrics"].items():
        rows.append((name, f"{metric['value']:.2f}", metric["unit"], metric["method"], metric["confidence"]))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.rjust(width) if column == 1 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in rows
    ]
    if document["refusals"]:
        lines.append("")
        lines.append("left out:")
        lines.extend(f"  {name}: {reason}" for name, reason in document["refusals"].items())
    return "\n".join(lines)


if __name__ == "__main__":
    compute_command(prog_name="interceptor compute")
