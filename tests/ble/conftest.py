"""BLE fixtures: a household config with Bluetooth scales, and a real mosquitto on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HOUSEHOLD_TOML, free_port, wait_for_port

TOKEN = "gateway-token-for-tests-0123456789"
S400_KEY = "0728974d657a4b60964c1b1677f35f7c"
MOSQUITTO = Path("/usr/sbin/mosquitto")


def ble_toml(key: str = S400_KEY, extra: str = "") -> str:
    """The test household plus [ble]: the S400 of vector S400-XB-1 with profile 1 → Fred."""
    return HOUSEHOLD_TOML + f"""
[ble]
token = "{TOKEN}"

[ble.devices."8C:D0:B2:F6:BE:EF"]
bind_key = "{key}"
model = "S400 bathroom"
profiles = {{ 1 = "fed" }}
{extra}"""


@pytest.fixture
def ble_config(tmp_path: Path) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(ble_toml(), encoding="utf-8")
    return path


@dataclass
class Broker:
    process: subprocess.Popen
    port: int


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """Debian's mosquitto on a free loopback port with its own config; missing it fails the run:
    scripts/setup.sh --test installs it (scripts/debian-test-packages.txt)."""
    if not MOSQUITTO.exists():
        pytest.fail("mosquitto is not installed: run ./scripts/setup.sh --test (it installs Debian's mosquitto)")
    root = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    config = root / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      f"log_dest file {root / 'mosquitto.log'}\n", encoding="utf-8")
    process = subprocess.Popen([str(MOSQUITTO), "-c", str(config)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, process)
        yield Broker(process, port)
    finally:
        process.terminate()
        process.wait(timeout=10)
