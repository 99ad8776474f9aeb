"""The stand-in Garmin servers behind a loopback proxy, and a household whose commands reach only them."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, HOUSEHOLD_TOML, run_cli
from tests.garmin.standin import MFA_CODE, Certificates, Garmin, StandIn, make_certificates

GUARD = Path(__file__).parent / "network_guard"


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("garmin-tls"))


@pytest.fixture
def standin(certificates: Certificates) -> Iterator[StandIn]:
    server = StandIn(Garmin(), certificates)
    server.start()
    yield server
    server.stop()


@dataclass
class Household:
    config_path: Path
    data_dir: Path
    home: Path
    standin: StandIn
    network_log: Path

    @property
    def garmin(self) -> Garmin:
        return self.standin.garmin

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of every command: the stand-in's proxy and CA, the network guard, and a HOME of
        its own (the library's default token directory, `~/.garminconnect`, must stay absent)."""
        return {**os.environ, **self.standin.environment(), "HOME": str(self.home), "PYTHONPATH": str(GUARD),
                "GARMIN_TEST_NETWORK_LOG": str(self.network_log), **extra}

    def cli(self, *args: str, input: str | None = None, **extra: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(self.config_path), "--data-dir", str(self.data_dir), input=input,
                       env=self.env(**extra))

    def login(self) -> subprocess.CompletedProcess:
        garmin = self.garmin
        done = self.cli("garmin", "login", "--user", "fra", input=f"{garmin.email}\n{garmin.password}\n{MFA_CODE}\n")
        assert done.returncode == 0, done.stderr
        return done

    def import_history(self) -> None:
        """Three of Franziska's weigh-ins from an openScale file (tests/fixtures/imports)."""
        done = self.cli("import", "--user", "fra", str(FIXTURES / "imports" / "openscale.csv"))
        assert done.returncode == 0, done.stderr

    def outputs_hold_no_secret(self, *runs: subprocess.CompletedProcess) -> None:
        text = "".join(run.stdout + run.stderr for run in runs)
        for secret in self.garmin.secrets:
            assert secret not in text

    def nothing_left_loopback(self) -> None:
        """No process reached for anything but loopback, and the proxy only tunnelled to Garmin's names."""
        assert not self.network_log.exists() or self.network_log.read_text() == ""
        assert self.garmin.violations == []
        assert not (self.home / ".garminconnect").exists()


def garmin_toml(extra: str = "") -> str:
    return HOUSEHOLD_TOML + extra


@pytest.fixture
def household(tmp_path: Path, standin: StandIn) -> Household:
    path = tmp_path / "interceptor.toml"
    path.write_text(garmin_toml(), encoding="utf-8")
    home = tmp_path / "home"
    home.mkdir()
    return Household(path, tmp_path / "data", home, standin, tmp_path / "network.log")
