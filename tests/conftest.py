"""Fixtures shared by every test: a household config, free loopback ports, and a real `interceptor serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
INTERCEPTOR = Path(sys.executable).parent / "interceptor"

HOUSEHOLD_TOML = """
[household]
timezone = "Europe/Paris"
locale = "fr_FR"
weight_unit = "kg"
gravity_m_s2 = 9.8113

[[users]]
slug = "fed"
name = "Fred"
short_name = "FED"
sex = "male"
birth_date = "1992-08-15"
height_cm = 200
withings_user_id = 2507298

[[users]]
slug = "fra"
name = "Franziska"
short_name = "FRA"
sex = "female"
birth_date = "1983-08-20"
height_cm = 161

[devices."00:24:E4:06:59:DC"]
model = "WS-50"
"""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout} s")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(HOUSEHOLD_TOML, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed `interceptor` command, exactly as a user runs it."""
    return subprocess.run(
        [str(INTERCEPTOR), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=False
    )


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    config_path: Path
    data_dir: Path
    log_path: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(self.config_path), "--data-dir", str(self.data_dir))

    def kill(self, sig: int = signal.SIGTERM) -> str:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def start_server(config_path: Path, data_dir: Path, port: int | None = None) -> Served:
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"serve-{port}.log"  # a file, not a pipe: a full pipe would block the server
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(INTERCEPTOR), "serve", "--config", str(config_path), "--data-dir", str(data_dir),
             "--http-listen", f"127.0.0.1:{port}", "--no-dns"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        wait_for_port(port, process)
    except Exception:
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(log_path.read_text()) from None
    return Served(process, port, config_path, data_dir, log_path)


@pytest.fixture
def served(config_path: Path, data_dir: Path) -> Iterator[Served]:
    """`interceptor serve` as a real process on a free loopback port, stopped after the test."""
    server = start_server(config_path, data_dir)
    yield server
    server.kill()
