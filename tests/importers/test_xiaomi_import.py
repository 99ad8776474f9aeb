"""`interceptor import xiaomi` against the stand-in: every page, each record once, people mapped, idempotent."""

from __future__ import annotations

import io
import json
from typing import Any

from interceptor.importers.cloud.report import Progress
from interceptor.importers.summary import Summary
from tests.importers.conftest import Household
from tests.importers.histories import FILLERS, S400_MAC


def measurements(household: Household) -> list[dict[str, Any]]:
    listed = household.cli("measurements", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return json.loads(listed.stdout)


def summary_of(stdout: str, label: str) -> list[str]:
    """The summary of one source: its line and the skipped records listed under it."""
    lines = stdout.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(label))
    listed = []
    for line in lines[start + 1:]:
        if not line.startswith("  "):
            break
        listed.append(line)
    return [lines[start], *listed]


def test_the_whole_history_once_then_nothing(household: Household) -> None:
    household.login()
    dry = household.cli("import", "xiaomi", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert summary_of(dry.stdout, "Xiaomi Home (yunmai.scales.ms104)")[0].startswith(
        "Xiaomi Home (yunmai.scales.ms104): 44 would be new, 0 would be merged")
    assert "dry run: nothing was written" in dry.stderr
    assert not (household.data_dir / "journal.sqlite").exists()

    first = household.cli("import", "xiaomi")
    assert first.returncode == 0, first.stderr
    # 46 records on three overlapping pages: the two boundary repeats are gone, two records skipped.
    assert summary_of(first.stdout, "Xiaomi Home (yunmai.scales.ms104)") == [
        "Xiaomi Home (yunmai.scales.ms104): 44 new, 0 merged into stored weigh-ins, 0 unchanged, 2 skipped",
        "  skipped the record of 2025-07-31 22:13:20 UTC: typed in by hand in the app (reportFrom UserEditor);"
        " --with-manual imports it",
        "  skipped page 1 record 3: its data is not a JSON object"]
    assert "Xiaomi Home (xiaomi.scales.ms111): 0 new, 0 merged into stored weigh-ins, 0 unchanged, 0 skipped" \
        in first.stdout
    stored = measurements(household)
    assert len(stored) == 44 and {item["device_id"] for item in stored} == {S400_MAC}
    assert {item["source"] for item in stored} == {"xiaomi-home"}
    assert sum(item["user"] == "fed" for item in stored) == 3 and sum(item["user"] == "fra" for item in stored) == 41
    alex = next(item for item in stored if item["taken_at"] == "2025-08-23T05:37:28Z")  # the V4 record
    assert alex["user"] == "fed" and alex["assigned_by"] == "import"
    assert alex["readings"] == {"weight_kg": 87.8, "heart_rate_bpm": 73.0, "impedance_low_ohm": 384.1,
                                "impedance_high_ohm": 357.5}
    assert alex["metrics"]["body_fat_pct"] == {"value": 22.9, "unit": "%", "method": "vendor", "confidence": "vendor"}
    assert alex["raw"]["xiaomi_pm"] == 11.6
    franziska = next(item for item in stored if item["readings"]["weight_kg"] == 58.35)  # fromSource 2, strings
    assert franziska["user"] == "fra" and franziska["metrics"]["visceral_fat"]["value"] == 4.0
    owner = [item for item in stored if item["raw"].get("xiaomi_from_source") == 1 and item["user"] == "fra"]
    assert len(owner) == FILLERS

    again = household.cli("import", "xiaomi")
    assert again.returncode == 0, again.stderr
    assert "Xiaomi Home (yunmai.scales.ms104): 0 new, 0 merged into stored weigh-ins, 44 unchanged, 2 skipped" \
        in again.stdout
    assert len(measurements(household)) == 44

    manual = household.cli("import", "xiaomi", "--with-manual", "--since", "2025-08-01")
    assert manual.returncode == 0, manual.stderr
    assert "Xiaomi Home (yunmai.scales.ms104): 1 new, 0 merged into stored weigh-ins, 1 unchanged, 1 skipped" \
        in manual.stdout  # since August 1st, Paris time: the hand-typed weight, the V4 record (and the broken one)
    typed = [item for item in measurements(household) if item["device_id"] == "xiaomi-app"]
    assert [item["readings"] for item in typed] == [{"weight_kg": 71.0}]
    assert household.cloud.violations == []


def test_mi_fitness_signs_its_own_service_in_from_the_pass_token(household: Household) -> None:
    household.login()
    done = household.cli("import", "xiaomi", "--from", "fitness")
    assert done.returncode == 0, done.stderr
    assert ("Mi Fitness (account 1234567890): 6 new, 0 merged into stored weigh-ins, 0 unchanged, 0 skipped, "
            "1 other row(s) ignored (not weigh-ins)") in done.stdout
    assert household.cloud.renewals == ["miothealth"]  # no second password
    assert household.cloud.calls.count("/app/v1/data/get_fitness_data_by_time") == 2  # two pages, /app signed
    stored = measurements(household)
    assert {(item["source"], item["device_id"]) for item in stored} == {("mi-fitness", S400_MAC)}
    assert stored[0]["metrics"]["skeletal_muscle_mass_kg"]["method"] == "vendor"
    assert household.cloud.violations == []


def test_a_household_member_missing_from_the_config_is_named(household: Household) -> None:
    household.config_path.write_text(household.config_path.read_text().replace('"Alex" = "fed"', '"Alex" = "bob"'))
    household.login()
    done = household.cli("import", "xiaomi")
    assert done.returncode == 2
    assert "[xiaomi] members: 'Alex' = 'bob' is not a person of the household (fed, fra)" in done.stderr


def test_a_china_account_reads_get_data(household: Household) -> None:
    cloud = household.cloud
    cloud.region = "cn"
    cloud.home_records = {"yunmai.scales.ms103": [{**record, "model": "yunmai.scales.ms103"}
                                                  for record in cloud.home_records["yunmai.scales.ms104"][:3]]}
    cloud.devices = [{**cloud.devices[0], "model": "yunmai.scales.ms103"}]
    login = household.cli("xiaomi", "login", "--region", "cn", "--user", cloud.user, input=cloud.password + "\n")
    assert login.returncode == 0, login.stderr
    done = household.cli("import", "xiaomi")
    assert done.returncode == 0, done.stderr
    assert "Xiaomi Home (yunmai.scales.ms103): 3 new, 0 merged into stored weigh-ins" in done.stdout
    assert "/eco/scale/getData" in cloud.calls and "/eco/common/scale/getUserDataByPage" not in cloud.calls
    assert cloud.violations == []


def test_progress_is_a_line_rewritten_on_a_terminal_only() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    summary = Summary("Xiaomi Home", "yunmai.scales.ms104", new=2, merged=1, skipped=1)
    terminal, pipe = Terminal(), io.StringIO()
    for stream in (terminal, pipe):
        progress = Progress(stream)
        progress.show(summary, 2)
        progress.done()
    assert terminal.getvalue() == ("\rXiaomi Home (yunmai.scales.ms104): page 2, 2 new, 1 merged, 0 unchanged, "
                                   "1 skipped\x1b[K\n")
    assert pipe.getvalue() == ""
