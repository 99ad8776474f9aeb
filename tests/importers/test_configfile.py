"""Bind keys written into the config file in place: comments, order and mode kept; nothing half-written."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from interceptor.config import load_config
from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.xiaomi.configfile import KeyUpdate, apply_updates, write_bind_keys

S400 = KeyUpdate("8C:D0:B2:F6:BE:EF", "0728974d657a4b60964c1b1677f35f7c", "Xiaomi Body Composition Scale S400")
S200 = KeyUpdate("D0:7B:6F:27:D7:29", "653b1b10e1cb35e4ac5e60fa45f3bf29", "Xiaomi Smart Scale S200")

WRITTEN_BY_HAND = """# our house
[household]
timezone = "Europe/Paris"   # where the scale is

[ble]
token = "gateway-token-for-tests-0123456789"

# bathroom, upstairs
[ble.devices."8c:d0:b2:f6:be:ef"]
bind_key = "0x00112233445566778899aabbccddeeff"   # from the old extractor
model = "S400 bathroom"
profiles = { 1 = "fed" }

[influx]
url = "http://127.0.0.1:8086"
"""


def test_an_old_key_is_replaced_and_a_new_scale_added_keeping_everything_else() -> None:
    text, changes = apply_updates(WRITTEN_BY_HAND, [S400, S200])
    assert changes == ["8C:D0:B2:F6:BE:EF: bind key updated", "D0:7B:6F:27:D7:29: added"]
    lines = text.splitlines()
    assert lines[:8] == WRITTEN_BY_HAND.splitlines()[:8]  # comments, blank lines, order, the key's own spelling
    assert 'bind_key = "0728974d657a4b60964c1b1677f35f7c"   # from the old extractor' in lines
    assert 'model = "S400 bathroom"' in lines and 'profiles = { 1 = "fed" }' in lines  # a name given by hand stays
    assert text.index("[ble.devices.\"D0:7B:6F:27:D7:29\"]") < text.index("[influx]")
    assert 'model = "Xiaomi Smart Scale S200"' in text
    again, unchanged = apply_updates(text, [S400, S200])
    assert again == text and unchanged == ["8C:D0:B2:F6:BE:EF: unchanged", "D0:7B:6F:27:D7:29: unchanged"]


def test_a_config_without_ble_gets_the_section() -> None:
    text, _ = apply_updates('[household]\ntimezone = "UTC"\n', [S400])
    assert '[ble.devices."8C:D0:B2:F6:BE:EF"]\nbind_key = "0728974d657a4b60964c1b1677f35f7c"' in text


def test_the_file_is_replaced_atomically_with_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "interceptor.toml"
    path.write_text(WRITTEN_BY_HAND, encoding="utf-8")
    os.chmod(path, 0o640)
    before = path.stat().st_ino
    write_bind_keys(path, [S400])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640 and path.stat().st_ino != before
    device = load_config(path, environ={}).ble.devices["8C:D0:B2:F6:BE:EF"]
    assert device.key_bytes == bytes.fromhex(S400.bind_key) and device.profiles == {1: "fed"}
    assert [item.name for item in tmp_path.iterdir()] == ["interceptor.toml"]  # no temporary file left


def test_a_result_that_would_not_load_leaves_the_file_alone(tmp_path: Path) -> None:
    path = tmp_path / "interceptor.toml"
    broken = WRITTEN_BY_HAND.replace('timezone = "Europe/Paris"', 'timezone = "Mars/Olympus"')
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(CloudError, match="would not load"):
        write_bind_keys(path, [S400])
    assert path.read_text(encoding="utf-8") == broken
    assert [item.name for item in tmp_path.iterdir()] == ["interceptor.toml"]
    path.write_text("[ble\n", encoding="utf-8")
    with pytest.raises(CloudError, match="not valid TOML"):
        write_bind_keys(path, [S400])
