"""Fixtures shared by every test: a household config, free loopback ports, and a real `interceptor serve`."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

T = TypeVar("T")

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


def wait_until(condition: Callable[[], T], timeout: float = 15.0, what: str = "the condition") -> T:
    """Polls `condition` until it holds, and returns what it gave: for what a server does on its own time
    (a sink, a broker) or a process it starts."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(HOUSEHOLD_TOML, encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            input: str | None = None) -> subprocess.CompletedProcess:
    """The installed `interceptor` command, exactly as a user runs it; `input` is what they type."""
    return subprocess.run(
        [str(INTERCEPTOR), *args], capture_output=True, text=True, timeout=60, env=env, cwd=cwd, check=False,
        input=input,
    )


@dataclass
class Served:
    process: subprocess.Popen
    port: int
    config_path: Path
    data_dir: Path
    log_path: Path
    web_port: int

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

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


# For tests that play many scales, or months of weigh-ins, from one loopback address in seconds, which
# no household does: the cloud's [http] rate_limit off (its own tests are in tests/test_http_abuse.py).
NO_RATE_LIMIT = {"INTERCEPTOR_HTTP__RATE_LIMIT": "0"}


def start_server(config_path: Path, data_dir: Path, port: int | None = None, web_port: int | None = None,
                 env: dict[str, str] | None = None, *, options: tuple[str, ...] = ()) -> Served:
    """Also the household page, on its own free loopback port (never the default 8080 shared by every test);
    `env`: variables added to the server's environment (NO_RATE_LIMIT); `options`: more for the command line
    (`--capture DIR`); no DNS responder unless they name one (`--dns-listen HOST:PORT`)."""
    port = port or free_port()
    web_port = web_port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / f"serve-{port}.log"  # a file, not a pipe: a full pipe would block the server
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(INTERCEPTOR), "serve", "--config", str(config_path), "--data-dir", str(data_dir),
             "--http-listen", f"127.0.0.1:{port}", "--web-listen", f"127.0.0.1:{web_port}",
             *(options if "--dns-listen" in options else ("--no-dns", *options))],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
    try:
        wait_for_port(port, process)
    except Exception:
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(log_path.read_text()) from None
    try:
        wait_for_port(web_port, process)
    except Exception:
        process.kill()
        process.wait(timeout=10)
        raise RuntimeError(log_path.read_text()) from None
    return Served(process, port, config_path, data_dir, log_path, web_port)


@pytest.fixture
def served(config_path: Path, data_dir: Path) -> Iterator[Served]:
    """`interceptor serve` as a real process on a free loopback port, stopped after the test."""
    server = start_server(config_path, data_dir)
    yield server
    server.kill()


# ---------------------------------------------------------------------------------------------------
# A real InfluxDB: Debian's influxdb 1.6.7, installed by `scripts/setup.sh --test`.

INFLUXD = Path("/usr/bin/influxd")
INFLUXD_CONFIG = """
reporting-enabled = false
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{root}/meta"
[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false
[monitor]
  store-enabled = false
[http]
  bind-address = "127.0.0.1:{http_port}"
  log-enabled = false
  pprof-enabled = false
"""


@dataclass
class Influx:
    """A running influxd on loopback; `url` is its HTTP API."""

    process: subprocess.Popen
    url: str
    root: Path
    config_path: Path
    log_path: Path

    def query(self, statement: str, database: str | None = None) -> dict:
        import json
        import urllib.parse
        import urllib.request

        parameters = {"q": statement, "epoch": "s"}
        if database:
            parameters["db"] = database
        request = urllib.request.Request(f"{self.url}/query", data=urllib.parse.urlencode(parameters).encode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def start(self) -> None:
        """(Re)start on the same port and directories, and wait until /ping answers 204."""
        import urllib.request

        with self.log_path.open("a") as log:
            self.process = subprocess.Popen([str(INFLUXD), "-config", str(self.config_path)], stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"influxd exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/ping", timeout=0.5) as response:
                    if response.status == 204:
                        return
            except OSError:
                time.sleep(0.05)
        raise TimeoutError("influxd did not answer /ping within 20 s")


@pytest.fixture(scope="session")
def influxd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influx]:
    """One influxd for the test session, on a free loopback port with its own temporary directories.
    Missing influxd fails the run loudly: the README's test command installs it."""
    if not INFLUXD.exists():
        pytest.fail("influxd is not installed: run ./scripts/setup.sh --test (it installs Debian's influxdb)")
    root = tmp_path_factory.mktemp("influxd")
    http_port = free_port()
    config_path = root / "influxdb.conf"
    config_path.write_text(INFLUXD_CONFIG.format(root=root, http_port=http_port, rpc_port=free_port()))
    server = Influx(subprocess.Popen(["true"]), f"http://127.0.0.1:{http_port}", root, config_path,
                    root / "influxd.log")
    server.start()
    yield server
    server.stop()
