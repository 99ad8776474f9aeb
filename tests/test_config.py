"""Configuration: TOML, environment overrides, and errors that name the key and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interceptor.config import ConfigError, load_config
from tests.conftest import HOUSEHOLD_TOML, run_cli

EXAMPLE = Path(__file__).parent.parent / "interceptor.example.toml"


def test_the_shipped_example_is_valid() -> None:
    config = load_config(EXAMPLE, environ={})
    assert [person.slug for person in config.users] == ["anna", "ben"]
    assert config.household.timezone == "Europe/Paris"


def test_no_file_at_all_is_an_empty_household(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(None, environ={"XDG_DATA_HOME": str(tmp_path)})
    assert config.users == () and config.http.listen == "0.0.0.0:80"


def test_environment_overrides_the_file(config_path: Path) -> None:
    config = load_config(config_path, environ={
        "INTERCEPTOR_HOUSEHOLD__TIMEZONE": "America/New_York",
        "INTERCEPTOR_HTTP__LISTEN": "[::1]:8080",
        "INTERCEPTOR_WITHINGS__IND_EXTRA": '{"w": 1}',
    })
    assert config.household.timezone == "America/New_York"
    assert config.http.host_port == ("::1", 8080)
    assert config.withings.ind_extra == {"w": 1}
    assert config.devices["00:24:e4:06:59:dc"].model == "WS-50"  # MAC keys are normalised


@pytest.mark.parametrize(("toml", "environ", "expected"), [
    ('[household]\ntimezone = "Europe/Pari"\n', {}, "household.timezone: 'Europe/Pari' is not an IANA timezone"),
    ('[household]\ntimzone = "UTC"\n', {}, "household.timzone: unknown key"),
    ('[[users]]\nslug = "a"\nname = "A"\nshort_name = "AB"\nsex = "male"\nbirth_date = "1990-01-01"\nheight_cm = 170\n',
     {}, "users[0].short_name: must be exactly three letters"),
    ('[[users]]\nslug = "a"\nname = "A"\nshort_name = "ABC"\nsex = "male"\nbirth_date = "1990-01-01"\n', {},
     "users[0].height_cm: Field required"),
    ("", {"INTERCEPTOR_HTTP__LISTEN": "eighty"},
     "INTERCEPTOR_HTTP__LISTEN (environment): http.listen: 'eighty' is not"),
    ("[household\n", {}, "not valid TOML"),
    (HOUSEHOLD_TOML.replace('slug = "fra"', 'slug = "fed"'), {}, "two users share slug 'fed'"),
])
def test_errors_name_the_key_and_the_fix(tmp_path: Path, toml: str, environ: dict, expected: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as error:
        load_config(path, environ=environ)
    assert expected in str(error.value)


def test_config_check_prints_the_effective_config(config_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(config_path))
    assert result.returncode == 0, result.stderr
    effective = json.loads(result.stdout)
    assert effective["household"]["locale"] == "fr_FR"
    assert [user["short_name"] for user in effective["users"]] == ["FED", "FRA"]
    assert "config OK" in result.stderr


def test_a_wrong_config_exits_2_with_one_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[household]\ngravity_m_s2 = 98113\n')
    for command in (["config", "check"], ["serve", "--no-dns"], ["measurements", "list"]):
        result = run_cli(*command, "--config", str(path))
        assert result.returncode == 2, (command, result.stderr)
        assert "household.gravity_m_s2: Input should be less than or equal to 9.84" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_config_file_is_named(tmp_path: Path) -> None:
    result = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 2 and "nope.toml: no such file" in result.stderr
