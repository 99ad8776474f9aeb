"""The stand-in Xiaomi and Zepp clouds on loopback, and a household config that points at them."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import HOUSEHOLD_TOML, run_cli
from tests.importers.histories import fill
from tests.importers.standin import Cloud, StandIn

GATEWAY_TOKEN = "gateway-token-for-tests-0123456789"


def xiaomi_toml(base: str, extra: str = "") -> str:
    return HOUSEHOLD_TOML + f"""
# Bluetooth: the gateway's token; keys are added by `interceptor xiaomi devices --write-config`
[ble]
token = "{GATEWAY_TOKEN}"  # same on the gateway

[xiaomi]
members = {{ "Alex" = "fed" }}   # Xiaomi Home member name -> person
owner = "fra"
account_url = "{base}"
api_url = "{base}/{{region}}/app"
fitness_url = "{base}/fitness-{{region}}"
zepp_url = "{base}/mifit"
zepp_login_url = "{base}/zepp/v2/client/login"
zepp_email_login_url = "{base}/huami/v2/client/login"
zepp_registrations_url = "{base}/huami/registrations"
{extra}"""


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    """The stand-in with the test account's devices and histories (tests/importers/histories.py)."""
    state = fill(Cloud())
    server = StandIn(state)
    server.start()
    yield state
    server.stop()


@dataclass
class Household:
    config_path: Path
    data_dir: Path
    cloud: Cloud

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(self.config_path), "--data-dir", str(self.data_dir), input=input)

    def login(self) -> None:
        done = self.cli("xiaomi", "login", "--region", "de", "--user", self.cloud.user,
                        input=self.cloud.password + "\n")
        assert done.returncode == 0, done.stderr


@pytest.fixture
def household(tmp_path: Path, cloud: Cloud) -> Household:
    path = tmp_path / "interceptor.toml"
    path.write_text(xiaomi_toml(cloud.base), encoding="utf-8")
    return Household(path, tmp_path / "data", cloud)
