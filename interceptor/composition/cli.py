"""`interceptor compute`: body composition for numbers typed by hand, for the curious.

A thin shell over `compose`: parse, build the profile (from `--user`'s config entry, or typed) and the
readings, print. Errors follow `interceptor.command`: one line, exit 2 for a wrong argument.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import datetime
from typing import Any

import click

from interceptor.command import EXIT_CONFIG, UserError, check_person, common_options, format_option, load, parse_since
from interceptor.composition.core import Options, Profile
from interceptor.composition.engine import METHODS, compose


def _fail(message: str) -> UserError:
    return UserError(message, EXIT_CONFIG)


@click.command(name="compute")
@common_options
@click.option("--user", "slug", help="take sex, age and height from this person of the household")
@click.option("--date", "on", help="with --user: the day of the weigh-in, for the age (default: today)")
@click.option("--sex", type=click.Choice(["male", "female"]), help="needed without --user")
@click.option("--age", type=float, help="years at the weigh-in (fractions allowed); needed without --user")
@click.option("--height-cm", type=float, help="needed without --user")
@click.option("--weight-kg", type=float, required=True)
@click.option("--impedance-ohm", type=float,
              help="the impedance (Mi Scale 2), or one S400 band (alone with --method s400: the one sent with weight)")
@click.option("--impedance2-ohm", type=float, help="the other S400 band; the two are told apart by value")
@click.option("--method", type=click.Choice(list(METHODS)), help="default: what the impedances imply")
@click.option("--visceral-fat", "visceral", type=click.Choice(["holtek", "legacy"]), default="holtek",
              show_default=True, help="visceral-fat variant of the xiaomi method")
@click.option("--fat-offset", type=float, default=0.0, help="personal calibration, body-fat points to add")
@format_option()
def compute_command(
    slug: str | None,
    on: str | None,
    sex: str | None,
    age: float | None,
    height_cm: float | None,
    weight_kg: float,
    impedance_ohm: float | None,
    impedance2_ohm: float | None,
    method: str | None,
    visceral: str,
    fat_offset: float,
    output: str,
) -> None:
    """Print the body composition of one weigh-in, with the method and confidence of every metric."""
    sex, age, height_cm = _profile(slug, on, sex, age, height_cm)
    readings = {"weight_kg": weight_kg}
    if impedance2_ohm is not None and impedance_ohm is None:
        raise _fail("--impedance2-ohm needs --impedance-ohm as well")
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
        raise _fail(str(error)) from None
    document = composition.as_json()
    if output == "json":
        click.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output == "csv":
        _csv(document)
    else:
        click.echo(_table(document))


def _profile(slug: str | None, on: str | None, sex: str | None, age: float | None,
             height_cm: float | None) -> tuple[str, float, float]:
    """Sex, age and height: typed, else from the person's entry in the config (typed values win)."""
    if slug is not None:
        from interceptor.users import age_in_years

        config = load()
        check_person(config, slug)
        person = config.person(slug)
        assert person is not None
        moment = parse_since(on, config, "--date") if on else datetime.now(config.household.zone)
        assert moment is not None
        sex = sex or person.sex
        age = age if age is not None else age_in_years(person.birth_date, moment)
        height_cm = height_cm if height_cm is not None else person.height_cm
    elif on is not None:
        raise _fail("--date goes with --user (the age comes from the person's birth date)")
    missing = [flag for flag, value in (("--sex", sex), ("--age", age), ("--height-cm", height_cm)) if value is None]
    if missing:
        raise _fail(f"{', '.join(missing)} needed, or --user PERSON to take them from the config")
    assert sex is not None and age is not None and height_cm is not None
    return sex, age, height_cm


def _csv(document: dict[str, Any]) -> None:
    """A row per metric (rounded as every CSV of the project is), then a row per metric left out with its reason."""
    from interceptor.listing import number

    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["metric", "value", "unit", "method", "confidence", "left_out"])
    for name, metric in document["metrics"].items():
        writer.writerow([name, number(metric["value"]), metric["unit"], metric["method"], metric["confidence"], ""])
    for name, reason in document["refusals"].items():
        writer.writerow([name, "", "", "", "", reason])


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

