"""[ble] settings: bind keys as users paste them, refused with a reason that never repeats them."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from interceptor.ble.settings import BleSettings, parse_bind_key
from interceptor.config import ConfigError, load_config
from tests.conftest import run_cli

KEY = "0728974d657a4b60964c1b1677f35f7c"


@pytest.mark.parametrize("pasted", [
    KEY, KEY.upper(), "0x" + KEY, "0X" + KEY.upper(), " ".join(KEY[i:i + 2] for i in range(0, 32, 2)),
    ":".join(KEY[i:i + 2] for i in range(0, 32, 2)), f"  {KEY}\n",
])
def test_pasted_keys_are_accepted(pasted: str) -> None:
    assert parse_bind_key(pasted) == bytes.fromhex(KEY)


@pytest.mark.parametrize(("pasted", "reason"), [
    (KEY[:-2], "this one is 15 bytes"), (KEY + "00", "this one is 17 bytes"), (KEY[:-1], "odd number of digits"),
    (KEY[:-1] + "g", "other characters"), ("", "this one is 0 bytes"),
])
def test_bad_keys_say_why(pasted: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_bind_key(pasted)


def test_macs_are_normalised_and_keys_masked() -> None:
    settings = BleSettings.model_validate({
        "token": "t" * 24,
        "devices": {"8c-d0-b2-f6-be-ef": {"bind_key": "0x" + KEY.upper(), "profiles": {"1": "anna"}}},
    })
    assert settings.bind_key("8C:D0:B2:F6:BE:EF") == bytes.fromhex(KEY)
    assert settings.devices["8C:D0:B2:F6:BE:EF"].profiles == {1: "anna"}
    dumped = str(settings.model_dump(mode="json"))
    assert KEY not in dumped.lower()
    assert "t" * 24 not in dumped
    assert KEY not in repr(settings).lower()


def test_bad_key_in_config_names_the_key_not_its_value(tmp_path: Path) -> None:
    path = tmp_path / "interceptor.toml"
    short = KEY[:30]
    path.write_text(f'[ble.devices."8C:D0:B2:F6:BE:EF"]\nbind_key = "{short}"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={})
    message = str(raised.value)
    assert "ble.devices.8C:D0:B2:F6:BE:EF.bind_key" in message
    assert "16 bytes" in message and "15 bytes" in message
    assert short not in message


def test_profiles_are_checked() -> None:
    with pytest.raises(ValidationError, match="not a person slug"):
        BleSettings.model_validate({"devices": {"8C:D0:B2:F6:BE:EF": {"profiles": {"1": "Anna Smith"}}}})
    with pytest.raises(ValidationError, match="out of range"):
        BleSettings.model_validate({"devices": {"8C:D0:B2:F6:BE:EF": {"profiles": {"300": "anna"}}}})


def test_config_check_masks_ble_secrets(tmp_path: Path) -> None:
    path = tmp_path / "interceptor.toml"
    path.write_text(
        f'[ble]\ntoken = "gateway-token-0123456789"\n[ble.devices."8C:D0:B2:F6:BE:EF"]\nbind_key = "{KEY}"\n'
        '[ble.mqtt]\nhost = "127.0.0.1"\npassword = "mqtt-password-xyz"\n', encoding="utf-8")
    result = run_cli("config", "check", "--config", str(path))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    for secret in (KEY, "gateway-token-0123456789", "mqtt-password-xyz"):
        assert secret not in output
    assert "8C:D0:B2:F6:BE:EF" in output
