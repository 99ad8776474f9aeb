"""Every reader against its sample file (tests/fixtures/imports, built from the documented headers):
the weigh-ins it must give, in the vocabulary's names and SI units, and the rows it must refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from interceptor.importers import fitbit, formats, run
from interceptor.importers.mifitness import Ignored
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, Who
from interceptor.units import KG_PER_LB
from tests.conftest import FIXTURES

SAMPLES = FIXTURES / "imports"
PARIS = ZoneInfo("Europe/Paris")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ZEPP_PASSWORD = b"zepp-sample"


def rows(name: str, **options: object) -> list[object]:
    data = (SAMPLES / name).read_bytes()
    source = run.sources([(name, data)])[0]
    return list(run.rows(source, ReadOptions(PARIS, **options), NOW))  # type: ignore[arg-type]


def records(found: list[object]) -> list[Record]:
    return [row for row in found if isinstance(row, Record)]


def refusals(found: list[object]) -> dict[str, str]:
    return {row.where.rsplit(" ", 1)[-1]: row.reason for row in found if isinstance(row, Refusal)}


@pytest.mark.parametrize(("name", "expected"), [
    ("zepp-life.zip", "zepp"), ("withings.zip", "withings"), ("withings-weight-lb.csv", "withings"),
    ("fitbit.zip", "fitbit"), ("20240601_1234567890_MiFitness_hlth_center_fitness_data.csv", "mifitness"),
    ("openscale.csv", "openscale"), ("openscale-2x.csv", "openscale"), ("smartscaleconnect.csv", "smartscaleconnect"),
])
def test_the_format_is_told_from_the_content_not_the_name(tmp_path: Path, name: str, expected: str) -> None:
    renamed = tmp_path / "export.dat"
    renamed.write_bytes((SAMPLES / name).read_bytes())
    assert formats.detect(renamed.read_bytes(), str(renamed)) == expected


def test_zepp_life_aes_zip_family_told_apart_by_height_muscle_rate_in_kg() -> None:
    found = rows("zepp-life.zip", password=ZEPP_PASSWORD)
    first, second, third, stranger = records(found)
    assert first.taken_at == datetime(2021, 2, 5, 6, 30, 20, tzinfo=UTC)  # the file's +0000, not the household's zone
    assert first.values == {"weight_kg": 92.4}
    assert first.vendor == {"bmi": 23.1, "body_fat_pct": 19.5, "water_pct": 55.2, "bone_mass_kg": 3.4,
                            "bmr_kcal": 1980.0, "muscle_mass_kg": 70.1, "visceral_fat": 9.0}
    assert (first.who, second.who, stranger.who) == (Who(height_cm=200), Who(height_cm=161), Who(height_cm=172))
    assert third.vendor == {"bmi": 23.0}  # impedance failed: `null` composition is no value, not zero
    assert refusals(found) == {"6": "zero weight", "7": "unparsable date 'yesterday'"}


def test_zepp_life_zip_needs_its_password_and_says_when_it_is_wrong() -> None:
    with pytest.raises(FormatError, match=r"zepp-life\.zip: BODY/BODY_1612486800000\.csv is password-protected"):
        rows("zepp-life.zip")
    with pytest.raises(FormatError, match="wrong password"):
        rows("zepp-life.zip", password=b"nope")


def test_withings_export_joins_other_csv_and_turns_hydration_into_water_percent() -> None:
    found = rows("withings.zip")
    first, second = records(found)
    assert first.taken_at == datetime(2023, 3, 4, 7, 12, 33, tzinfo=PARIS)
    assert first.values == {"weight_kg": 92.81}
    assert first.vendor == pytest.approx({
        "fat_mass_kg": 18.2, "bone_mass_kg": 3.55, "muscle_mass_kg": 70.9, "water_pct": 52.4 / 92.81 * 100,
        "visceral_fat": 8, "bmr_kcal": 1985, "metabolic_age": 31, "extracellular_water_kg": 21.4,
        "intracellular_water_kg": 31.0})  # the segmental row (position 3) is not a whole-body value
    assert second.vendor["visceral_fat"] == 8
    assert refusals(found) == {"4": "no weight", "9": "no weigh-in at this time in weight.csv"}


def test_withings_pound_headers_become_kilograms() -> None:
    (record,) = records(rows("withings-weight-lb.csv"))
    assert record.values["weight_kg"] == pytest.approx(204.6 * KG_PER_LB)
    assert record.vendor["fat_mass_kg"] == pytest.approx(40.1 * KG_PER_LB)
    assert record.vendor["water_pct"] == pytest.approx(115.5 / 204.6 * 100)


def test_fitbit_unit_is_checked_against_bmi_and_height() -> None:
    found = rows("fitbit.zip", height_cm=200)
    first, second, third = records(found)
    assert second.vendor == {"bmi": 23.03}
    assert first.values["weight_kg"] == pytest.approx(203.5 * KG_PER_LB)  # weight / BMI = 2.2 × 2.0 m²: pounds
    assert first.vendor == {"bmi": 23.08, "body_fat_pct": 19.6}
    assert third.values["weight_kg"] == pytest.approx(202.8 * KG_PER_LB)  # no BMI: the file's unit
    assert first.taken_at == datetime(2023, 1, 1, 7, 15, tzinfo=PARIS)
    assert fitbit.unit_of([{"weight": 92.3, "bmi": 23.07}], 200) == "kg"


def test_fitbit_without_any_bmi_asks_for_the_unit() -> None:
    entries = b'[{"logId": 1, "weight": 80.0, "date": "01/01/23", "time": "07:00:00"}]'
    source = run.Source("weight-2023-01-01.json", entries, "fitbit")
    (refused,) = run.rows(source, ReadOptions(PARIS), NOW)
    assert isinstance(refused, Refusal) and "--weight-unit" in refused.reason
    (taken,) = run.rows(source, ReadOptions(PARIS, weight_unit="kg"), NOW)
    assert isinstance(taken, Record) and taken.values == {"weight_kg": 80.0}


def test_mi_fitness_weight_rows_with_json_values_other_rows_ignored() -> None:
    found = rows("20240601_1234567890_MiFitness_hlth_center_fitness_data.csv")
    first, second = records(found)
    assert first.taken_at == datetime.fromtimestamp(1717225200, UTC)
    assert first.values == {"weight_kg": 60.4, "heart_rate_bpm": 68}
    assert first.vendor == {"bmi": 23.3, "body_fat_pct": 29.8, "water_pct": 50.1, "muscle_mass_kg": 40.1,
                            "bone_mass_kg": 2.3, "bmr_kcal": 1285, "metabolic_age": 38, "visceral_fat": 5,
                            "protein_pct": 16.9, "skeletal_muscle_mass_kg": 22.4, "body_score": 84}
    assert first.origin == "blt.3.1ab2c3d4e5f6" and second.values == {"weight_kg": 60.1}
    assert sum(isinstance(row, Ignored) for row in found) == 1
    assert refusals(found) == {"5": "weight 560 kg is outside 2–400 kg"}


def test_openscale_current_local_time_muscle_percent_noon_when_no_time() -> None:
    found = rows("openscale.csv")
    first, second, third = records(found)
    assert first.taken_at == datetime(2024, 1, 10, 7, 15, 30, tzinfo=PARIS)
    assert first.values == {"weight_kg": 60.2, "impedance_ohm": 512.0}
    assert first.vendor == pytest.approx({"bmi": 23.2, "body_fat_pct": 29.5, "bone_mass_kg": 2.3,
                                          "fat_free_mass_kg": 42.5, "muscle_mass_kg": 35.0 * 60.2 / 100,
                                          "visceral_fat": 5, "water_pct": 50.2})
    assert second.values == {"weight_kg": 60.0, "heart_rate_bpm": 71}
    assert third.taken_at == datetime(2024, 1, 12, 12, 0, tzinfo=PARIS)
    assert refusals(found) == {"5": "unparsable date '12/01/2024'"}


def test_openscale_pounds_when_the_person_says_so() -> None:
    first = records(rows("openscale.csv", weight_unit="lb"))[0]
    assert first.values["weight_kg"] == pytest.approx(60.2 * KG_PER_LB)
    assert first.vendor["bone_mass_kg"] == pytest.approx(2.3 * KG_PER_LB)


def test_openscale_2x_iso_and_day_first_dates() -> None:
    first, second = records(rows("openscale-2x.csv"))
    assert first.taken_at == datetime(2019, 5, 2, 6, 50, tzinfo=PARIS)
    assert second.taken_at == datetime(2019, 5, 3, 6, 52, tzinfo=PARIS)
    assert first.values == {"weight_kg": 91.9}
    assert first.vendor == pytest.approx({"bone_mass_kg": 3.4, "body_fat_pct": 20.1, "fat_free_mass_kg": 73.4,
                                          "muscle_mass_kg": 41.0 * 91.9 / 100, "visceral_fat": 9.0,
                                          "water_pct": 55.0})


def test_smartscaleconnect_names_people_and_protein_mass_becomes_percent() -> None:
    first, second, guest = records(rows("smartscaleconnect.csv"))
    assert (first.who.name, second.who.name, guest.who.name) == ("Fred", "FRA", "Guest")
    assert first.values == {"weight_kg": 92.3, "heart_rate_bpm": 64}
    assert first.vendor["skeletal_muscle_mass_kg"] == 40.1 and first.vendor["body_type"] == 5
    assert first.vendor["protein_pct"] == pytest.approx(17.1 / 92.3 * 100)
    assert first.origin == "xiaomi"
