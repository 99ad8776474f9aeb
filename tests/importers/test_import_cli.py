"""`interceptor import` and `interceptor export`, run as a user runs them, on the sample files."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
import subprocess
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fitdecode
import pytest

from tests.conftest import FIXTURES, INTERCEPTOR, run_cli

SAMPLES = FIXTURES / "imports"
MI_FITNESS = SAMPLES / "20240601_1234567890_MiFitness_hlth_center_fitness_data.csv"


def cli(config_path: Path, data_dir: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    command = [str(INTERCEPTOR), *args, "--config", str(config_path), "--data-dir", str(data_dir)]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=60, check=False)


def stored(data_dir: Path) -> list[dict]:
    with sqlite3.connect(data_dir / "journal.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute("SELECT * FROM measurements ORDER BY taken_at")]


@pytest.mark.parametrize(("name", "args", "new", "skipped"), [
    ("zepp-life.zip", ["--password"], 3, 3),
    ("withings.zip", ["--user", "fed"], 2, 2),
    ("withings-weight-lb.csv", ["--user", "fed"], 1, 0),
    ("fitbit.zip", ["--user", "fed"], 3, 0),
    (MI_FITNESS.name, ["--user", "fra"], 2, 1),
    ("openscale.csv", ["--user", "fra"], 3, 1),
    ("openscale-2x.csv", ["--user", "fed"], 2, 0),
    ("smartscaleconnect.csv", [], 2, 1),
])
def test_each_format_imports_once_and_a_second_import_changes_nothing(
        config_path: Path, data_dir: Path, name: str, args: list[str], new: int, skipped: int) -> None:
    stdin = "zepp-sample\n" if "--password" in args else None
    first = cli(config_path, data_dir, "import", str(SAMPLES / name), *args, stdin=stdin)
    assert first.returncode == 0, first.stderr
    assert f": {new} new, 0 merged into stored weigh-ins, 0 unchanged, {skipped} skipped" in first.stdout
    assert first.stdout.count("\n  skipped ") == skipped
    before = stored(data_dir)
    assert len(before) == new and {row["source"] for row in before} == {"import"}
    again = cli(config_path, data_dir, "import", str(SAMPLES / name), *args, stdin=stdin)
    assert f": 0 new, 0 merged into stored weigh-ins, {new} unchanged, {skipped} skipped" in again.stdout
    assert stored(data_dir) == before


def test_zepp_rows_go_to_the_person_of_their_height(config_path: Path, data_dir: Path) -> None:
    result = cli(config_path, data_dir, "import", str(SAMPLES / "zepp-life.zip"), "--password", stdin="zepp-sample\n")
    assert "row 5: unknown person: height 172 cm matches nobody in the household; pass --user PERSON" in result.stdout
    assert [(row["user"], row["device_id"]) for row in stored(data_dir)] == [
        ("fed", "zepp-life:fed"), ("fra", "zepp-life:fra"), ("fed", "zepp-life:fed")]
    listed = json.loads(run_cli("measurements", "list", "--format", "json", "--config", str(config_path),
                                "--data-dir", str(data_dir)).stdout)
    assert listed[0]["metrics"]["body_fat_pct"] == {"value": 19.5, "unit": "%", "method": "vendor",
                                                    "confidence": "vendor"}
    assert listed[0]["metrics"]["muscle_mass_kg"]["value"] == 70.1


BEN_TOML = """
[household]
timezone = "Europe/Paris"

[[users]]
slug = "ben"
name = "Ben"
short_name = "BEN"
sex = "male"
birth_date = "1990-01-01"
height_cm = 180
"""


def test_the_summary_says_when_user_put_a_files_people_onto_one(data_dir: Path, tmp_path: Path) -> None:
    """Zepp tells family members apart by height; `--user` still takes them all, as documented, and
    the summary says so."""
    config_path = tmp_path / "ben.toml"
    config_path.write_text(BEN_TOML, encoding="utf-8")
    result = cli(config_path, data_dir, "import", str(SAMPLES / "zepp-life.zip"), "--password", "--user", "ben",
                 stdin="zepp-sample\n")
    assert result.returncode == 0, result.stderr
    said = "\n  the file holds 3 people (heights 200, 161, 172 cm); all went to ben because of --user\n"
    assert said in result.stdout
    assert {row["user"] for row in stored(data_dir)} == {"ben"}


def test_the_summary_says_which_named_people_user_took(config_path: Path, data_dir: Path) -> None:
    """SmartScaleConnect names Fred, FRA and Guest: Fred's and FRA's rows go to them, Guest's to --user."""
    result = cli(config_path, data_dir, "import", str(SAMPLES / "smartscaleconnect.csv"), "--user", "fed")
    assert result.returncode == 0, result.stderr
    assert ("\n  the file holds 3 people (names Fred, FRA, Guest); the rows of Guest went to fed because of --user\n"
            in result.stdout)
    assert [row["user"] for row in stored(data_dir)] == ["fed", "fra", "fed"]
    alone = cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "openscale.csv"))
    assert "the file holds" not in alone.stdout  # a file of one person says nothing of the kind


def test_withings_values_we_work_out_are_not_labelled_as_the_vendors(config_path: Path, data_dir: Path) -> None:
    """weight.csv gives fat mass in kg: its fat %, fat-free mass and FFMI are ours, the masses Withings'."""
    assert cli(config_path, data_dir, "import", "--user", "fed", str(SAMPLES / "withings.zip")).returncode == 0
    metrics = json.loads(stored(data_dir)[0]["metrics"])
    methods = {name: metrics[name]["method"] for name in metrics}
    for name in ("fat_mass_kg", "bone_mass_kg", "muscle_mass_kg", "visceral_fat"):
        assert methods[name] == "vendor", name
    for name in ("body_fat_pct", "fat_free_mass_kg", "ffmi", "ffmi_normalised"):
        assert methods[name] == "vendor-derived", name
    assert metrics["body_fat_pct"]["value"] == pytest.approx(100 * 18.2 / 92.81)


def test_dry_run_writes_nothing_not_even_a_journal(config_path: Path, data_dir: Path) -> None:
    result = cli(config_path, data_dir, "import", "--dry-run", "--user", "fra", str(SAMPLES / "openscale.csv"))
    assert result.returncode == 0, result.stderr
    assert ": 3 would be new, 0 would be merged into stored weigh-ins, 0 would be unchanged, 1 skipped" in result.stdout
    assert not (data_dir / "journal.sqlite").exists()
    cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "openscale.csv"))
    again = cli(config_path, data_dir, "import", "--dry-run", "--user", "fra", str(SAMPLES / "openscale.csv"))
    assert ": 0 would be new, 0 would be merged into stored weigh-ins, 3 would be unchanged" in again.stdout


def test_a_file_of_one_person_needs_user_in_a_household_of_several(config_path: Path, data_dir: Path) -> None:
    result = cli(config_path, data_dir, "import", str(SAMPLES / "openscale.csv"))
    assert result.returncode == 2
    assert result.stderr.strip().endswith("openScale CSV files hold one person's weigh-ins: pass --user PERSON"
                                          " (fed, fra)")


def test_a_wrong_password_and_a_missing_one_name_the_file(config_path: Path, data_dir: Path) -> None:
    wrong = cli(config_path, data_dir, "import", str(SAMPLES / "zepp-life.zip"), "--password", stdin="guess\n")
    assert wrong.returncode == 1
    assert "zepp-life.zip: BODY/BODY_1612486800000.csv: wrong password; nothing was imported" in wrong.stderr
    missing = cli(config_path, data_dir, "import", str(SAMPLES / "zepp-life.zip"))
    assert "is password-protected: pass --password" in missing.stderr
    assert not (data_dir / "journal.sqlite").exists()


def test_a_file_broken_at_its_end_is_refused_whole(config_path: Path, data_dir: Path, tmp_path: Path) -> None:
    good = (SAMPLES / "openscale.csv").read_text()
    broken = tmp_path / "openscale.csv"
    broken.write_text(good + '2024-01-13,07:00:00,,,,,,,,,,"60.0\n')  # an unclosed quote on the last line
    cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "smartscaleconnect.csv"))
    before = stored(data_dir)
    result = cli(config_path, data_dir, "import", "--user", "fra", str(broken))
    assert result.returncode == 1
    assert f"{broken} line 6: unexpected end of data; nothing was imported" in result.stderr
    assert stored(data_dir) == before


def test_a_record_of_a_stored_weigh_in_is_merged_into_it(config_path: Path, data_dir: Path, tmp_path: Path) -> None:
    cli(config_path, data_dir, "import", str(SAMPLES / "smartscaleconnect.csv"))
    (fred,) = [row for row in stored(data_dir) if row["user"] == "fed"]
    later = tmp_path / "fred-openscale.csv"  # the same weigh-in, 58 s later and 0.05 kg apart, with an impedance
    later.write_text("DATE,TIME,IMPEDANCE,WEIGHT\n2024-02-01,07:02:00,480.0,92.35\n")
    result = cli(config_path, data_dir, "import", "--user", "fed", str(later))
    assert ": 0 new, 1 merged into stored weigh-ins, 0 unchanged, 0 skipped" in result.stdout
    (merged,) = [row for row in stored(data_dir) if row["user"] == "fed"]
    assert merged["id"] == fred["id"]
    assert json.loads(merged["readings"]) == {"weight_kg": 92.3, "heart_rate_bpm": 64.0, "impedance_ohm": 480.0}


def test_an_exported_openscale_csv_reimports_to_the_same_weigh_ins(config_path: Path, data_dir: Path,
                                                                   tmp_path: Path) -> None:
    cli(config_path, data_dir, "import", str(SAMPLES / "zepp-life.zip"), "--password", stdin="zepp-sample\n")
    cli(config_path, data_dir, "import", str(SAMPLES / "smartscaleconnect.csv"))
    cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "openscale.csv"))
    exported = tmp_path / "fra.csv"
    result = cli(config_path, data_dir, "export", "--format", "openscale", "--user", "fra", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    lines = exported.read_text().splitlines()
    assert lines[0] == ("DATE,TIME,BMI,BMR,BODY_FAT,BONE,HEART_RATE,IMPEDANCE,IMPEDANCE_LOW,LBM,MUSCLE,PROTEIN,"
                        "VISCERAL_FAT,WATER,WEIGHT")
    assert lines[1].startswith("2021-02-05,07:41:02,23.30,1290.00,30.12,2.30,,,,") and lines[1].endswith(",60.35")
    before = stored(data_dir)
    again = cli(config_path, data_dir, "import", "--user", "fra", str(exported))
    fra = sum(row["user"] == "fra" for row in before)
    assert f": 0 new, 0 merged into stored weigh-ins, {fra} unchanged, 0 skipped" in again.stdout
    assert stored(data_dir) == before


def test_openscale_export_writes_heart_rate_as_a_whole_number(config_path: Path, data_dir: Path,
                                                               tmp_path: Path) -> None:
    """openScale keeps heart rate as an integer and reads it with toIntOrNull: "71.00" would be dropped."""
    cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "openscale.csv"))
    exported = tmp_path / "fra.csv"
    result = cli(config_path, data_dir, "export", "--format", "openscale", "--user", "fra", "-o", str(exported))
    assert result.returncode == 0, result.stderr
    with exported.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["HEART_RATE"] for row in rows] == ["", "71", ""]
    assert [row["WEIGHT"] for row in rows] == ["60.20", "60.00", "59.90"]  # decimal columns keep two decimals


def _openscale_days(path: Path, days: int) -> None:
    start = datetime(2020, 1, 1, 7, 0)
    rows = ["DATE,TIME,BMI,BMR,BODY_FAT,VISCERAL_FAT,WATER,WEIGHT"]
    for day in range(days):
        moment = start + timedelta(days=day)
        rows.append(f"{moment:%Y-%m-%d},{moment:%H:%M:%S},23.1,1980.5,{19 + day % 7 / 10:.1f},9.4,55.2,"
                    f"{92 + day % 11 / 10:.2f}")
    path.write_text("\n".join(rows) + "\n")


def test_fit_export_splits_at_200_and_decodes_to_the_stored_values(config_path: Path, data_dir: Path,
                                                                    tmp_path: Path) -> None:
    history = tmp_path / "history.csv"
    _openscale_days(history, 450)
    assert cli(config_path, data_dir, "import", "--user", "fed", str(history)).returncode == 0
    out = tmp_path / "fit"
    result = cli(config_path, data_dir, "export", "--format", "fit", "--user", "fed", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{out}/fed-weight-00{n}.fit: {count} weigh-in(s)"
                                          for n, count in ((1, 200), (2, 200), (3, 50))]
    decoded = []
    for path in sorted(out.glob("*.fit")):
        with fitdecode.FitReader(io.BytesIO(path.read_bytes()), check_crc=fitdecode.CrcCheck.ENABLED) as fit:
            messages = [frame for frame in fit if isinstance(frame, fitdecode.FitDataMessage)]
        (file_id,) = [message for message in messages if message.name == "file_id"]
        assert file_id.get_value("type") == "weight" and file_id.get_value("manufacturer") == "garmin"
        decoded += [message for message in messages if message.name == "weight_scale"]
    rows = stored(data_dir)
    assert len(decoded) == len(rows) == 450
    for message, row in zip(decoded, rows, strict=True):
        metrics = json.loads(row["metrics"])
        assert message.get_value("timestamp") == datetime.fromtimestamp(row["taken_at"], UTC)
        assert message.get_value("weight") == pytest.approx(json.loads(row["readings"])["weight_kg"], abs=0.005)
        assert message.get_value("percent_fat") == pytest.approx(metrics["body_fat_pct"]["value"], abs=0.005)
        assert message.get_value("percent_hydration") == pytest.approx(metrics["water_pct"]["value"], abs=0.005)
        assert message.get_value("bmi") == pytest.approx(metrics["bmi"]["value"], abs=0.05)
        assert message.get_value("basal_met") == pytest.approx(metrics["bmr_kcal"]["value"], abs=0.125)
        assert message.get_value("visceral_fat_rating") == 9  # 9.4 in the journal: Garmin takes integers only


def _weight_scales(directory: Path) -> list[fitdecode.FitDataMessage]:
    messages = []
    for path in sorted(directory.glob("*.fit")):
        with fitdecode.FitReader(io.BytesIO(path.read_bytes()), check_crc=fitdecode.CrcCheck.ENABLED) as fit:
            messages += [frame for frame in fit if isinstance(frame, fitdecode.FitDataMessage)
                         and frame.name == "weight_scale"]
    return messages


def test_fit_muscle_mass_is_skeletal_muscle_or_nothing(config_path: Path, data_dir: Path, tmp_path: Path) -> None:
    """Garmin's `muscle_mass` is skeletal muscle: an openScale file (total muscle only) sends none,
    a SmartScaleConnect row sends its skeletal muscle (40.1 kg), not its total muscle (70.2 kg)."""
    cli(config_path, data_dir, "import", "--user", "fra", str(SAMPLES / "openscale.csv"))
    cli(config_path, data_dir, "import", str(SAMPLES / "smartscaleconnect.csv"))
    for slug, expected in (("fra", [None, None, None, 22.3]), ("fed", [40.1])):
        out = tmp_path / slug
        result = cli(config_path, data_dir, "export", "--format", "fit", "--user", slug, "-o", str(out))
        assert result.returncode == 0, result.stderr
        sent = [message.get_value("muscle_mass", fallback=None) for message in _weight_scales(out)]
        assert sent == [None if value is None else pytest.approx(value, abs=0.005) for value in expected]


def _into_head(config_path: Path, data_dir: Path, *args: str) -> tuple[int, bytes, str]:
    """`interceptor ARGS | head -1`: the exit status of interceptor, what head printed, and
    interceptor's stderr."""
    command = [str(INTERCEPTOR), *args, "--config", str(config_path), "--data-dir", str(data_dir)]
    writer = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert writer.stdout is not None and writer.stderr is not None
    head = subprocess.Popen(["head", "-1"], stdin=writer.stdout, stdout=subprocess.PIPE)
    writer.stdout.close()  # head holds the only reading end: once it exits, the pipe is closed
    first, _ = head.communicate(timeout=60)
    errors = writer.stderr.read().decode()
    return writer.wait(timeout=60), first, errors


@pytest.mark.parametrize("args", [
    ("export", "--format", "csv", "--user", "fed"),
    ("export", "--format", "json", "--user", "fed"),
    ("export", "--format", "openscale", "--user", "fed"),
    ("measurements", "list"),
    ("measurements", "list", "--format", "json"),
    ("measurements", "list", "--format", "csv"),
], ids=" ".join)
def test_a_reader_that_stops_early_ends_the_command_quietly(config_path: Path, data_dir: Path, tmp_path: Path,
                                                            args: tuple[str, ...]) -> None:
    """`... | head -1` on a history far longer than a pipe holds: exit 0 and nothing on stderr."""
    history = tmp_path / "history.csv"
    _openscale_days(history, 2000)
    assert cli(config_path, data_dir, "import", "--user", "fed", str(history)).returncode == 0
    status, first, errors = _into_head(config_path, data_dir, *args)
    assert first.strip()
    assert errors == ""
    assert status == 0


def test_csv_and_json_export_use_the_vocabulary(config_path: Path, data_dir: Path, tmp_path: Path) -> None:
    cli(config_path, data_dir, "import", str(SAMPLES / "smartscaleconnect.csv"))
    as_csv = cli(config_path, data_dir, "export", "--format", "csv", "--since", "2024-02-01")
    header = as_csv.stdout.splitlines()[0].split(",")
    assert {"weight_kg", "heart_rate_bpm", "body_fat_pct", "body_fat_pct_method"} <= set(header)
    as_json = json.loads(cli(config_path, data_dir, "export", "--format", "json", "--user", "fra").stdout)
    assert [item["readings"]["weight_kg"] for item in as_json] == [60.5]
    assert as_json[0]["metrics"]["skeletal_muscle_mass_kg"]["value"] == 22.3


def test_a_zip_member_claiming_two_gigabytes_is_refused_by_name(config_path: Path, data_dir: Path,
                                                               tmp_path: Path) -> None:
    bomb = tmp_path / "export.zip"
    with zipfile.ZipFile(bomb, "w") as archive:
        archive.writestr("BODY/BODY_1.csv", "time,weight,height,bmi,fatRate,bodyWaterRate\n")
    data = bytearray(bomb.read_bytes())
    central = data.rindex(b"PK\x01\x02")
    data[central + 24:central + 28] = (2_000_000_000).to_bytes(4, "little")  # uncompressed size
    bomb.write_bytes(bytes(data))
    result = cli(config_path, data_dir, "import", "--user", "fed", str(bomb))
    assert result.returncode == 1
    assert (f"{bomb}: BODY/BODY_1.csv claims 2.0 GB uncompressed, over the 64 MB a weight export can be:"
            " not inflating it; nothing was imported") in result.stderr
