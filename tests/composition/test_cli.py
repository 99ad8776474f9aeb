"""`interceptor compute`, run as a user runs it: the installed console script in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

INTERCEPTOR = Path(sys.executable).parent / "interceptor"
ZEPP_ARGS = ["--sex", "male", "--age", "40", "--height-cm", "172", "--weight-kg", "64.7", "--impedance-ohm", "451"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(INTERCEPTOR), "compute", *args], capture_output=True, text=True, timeout=60)


def run_json(*args: str) -> subprocess.CompletedProcess[str]:
    return run(*args, "--format", "json")


def test_json_reproduces_the_zepp_record() -> None:
    result = run_json(*ZEPP_ARGS)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert set(document) == {"metrics", "refusals"}
    fat = document["metrics"]["body_fat_pct"]
    assert fat["value"] == pytest.approx(17.01331, abs=1e-3)
    assert (fat["unit"], fat["method"], fat["confidence"]) == ("%", "xiaomi", "vendor")
    assert document["metrics"]["muscle_mass_kg"]["value"] == pytest.approx(50.961838, abs=1e-3)
    assert int(document["metrics"]["bmr_kcal"]["value"]) == 1358


def test_two_impedances_select_the_s400_in_either_order() -> None:
    outputs = []
    for first, second in (("414.7", "460.3"), ("460.3", "414.7")):
        result = run_json("--sex", "male", "--age", "38", "--height-cm", "172", "--weight-kg", "71.9",
                     "--impedance-ohm", first, "--impedance2-ohm", second)
        assert result.returncode == 0, result.stderr
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1]
    assert outputs[0]["metrics"]["body_fat_pct"]["method"] == "s400"
    assert "visceral_fat" in outputs[0]["refusals"]


def test_method_s400_with_one_impedance_takes_it_as_the_with_weight_band() -> None:
    """ble-scale-sync #374's weigh-in (86.1 kg, 512.5 Ω with the weight): the app showed 22.7 %."""
    result = run_json("--sex", "male", "--age", "25", "--height-cm", "185", "--weight-kg", "86.1",
                 "--impedance-ohm", "512.5", "--method", "s400")
    assert result.returncode == 0, result.stderr
    fat = json.loads(result.stdout)["metrics"]["body_fat_pct"]
    assert (fat["method"], fat["confidence"]) == ("s400", "vendor-approximate")
    assert abs(fat["value"] - 22.7) < 1.0


def test_method_s400_for_a_woman_says_its_numbers_are_unverified() -> None:
    """Every public S400 pairing is a man's: a woman's S400 values are labelled `unverified`; the
    published equations beside them (Sun 2003 water, Janssen muscle) stay `literature`."""
    result = run_json("--sex", "female", "--age", "30", "--height-cm", "165", "--weight-kg", "60",
                      "--impedance-ohm", "560", "--impedance2-ohm", "500", "--method", "s400")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)["metrics"]
    for name in ("body_fat_pct", "fat_mass_kg", "fat_free_mass_kg", "muscle_mass_kg", "bone_mass_kg", "bmr_kcal",
                 "protein_pct", "ffmi"):
        assert (metrics[name]["method"], metrics[name]["confidence"]) == ("s400", "unverified"), name
    assert (metrics["water_pct"]["method"], metrics["water_pct"]["confidence"]) == ("sun2003", "literature")
    table = run("--sex", "female", "--age", "30", "--height-cm", "165", "--weight-kg", "60",
                "--impedance-ohm", "560", "--impedance2-ohm", "500", "--method", "s400", "--format", "table")
    assert any(line.split()[:1] == ["body_fat_pct"] and line.split()[-2:] == ["s400", "unverified"]
               for line in table.stdout.splitlines()), table.stdout


def test_table_is_for_people() -> None:
    result = run(*ZEPP_ARGS, "--format", "table", "--method", "literature")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["metric", "value", "unit", "method", "confidence"]
    assert any(line.split()[:2] == ["body_fat_pct", "10.67"] and "sun2003" in line for line in lines)
    assert "left out:" in lines
    assert any(line.strip().startswith("visceral_fat:") for line in lines)


def test_weight_only_still_prints_bmi_and_reasons() -> None:
    result = run_json("--sex", "female", "--age", "30", "--height-cm", "165", "--weight-kg", "60")
    document = json.loads(result.stdout)
    assert document["metrics"]["bmi"]["value"] == pytest.approx(22.0386, abs=1e-4)
    assert "no impedance" in document["refusals"]["body_fat_pct"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sex", "male", "--age", "40"], "Missing option '--weight-kg'"),
        (["--sex", "male", "--age", "40", "--weight-kg", "70"], "--height-cm needed, or --user PERSON"),
        ([*ZEPP_ARGS[:-1], "many"], "'many' is not a valid float"),
        ([*ZEPP_ARGS, "--method", "tanita"], "'tanita' is not one of"),
        (["--sex", "male", "--age", "40", "--height-cm", "1.72", "--weight-kg", "64.7"], "height must be"),
        ([*ZEPP_ARGS, "--fat-offset", "30"], "±15"),
        (["--sex", "male", "--age", "40", "--height-cm", "172", "--weight-kg", "64.7", "--impedance2-ohm", "500"],
         "--impedance2-ohm needs --impedance-ohm"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert message in lines[0]
