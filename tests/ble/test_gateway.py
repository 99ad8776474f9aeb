"""The gateway as a real process, forwarding to a real `interceptor serve` over HTTP; the server is
killed and restarted mid-stream. A file source stands in for the Bluetooth adapter."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from interceptor import __version__
from tests.ble.conftest import S400_KEY, TOKEN, ble_toml
from tests.ble.streams import (
    MI1_MAC,
    MI2_MAC,
    S400_MAC,
    S400_TIME,
    interleave,
    mi_scale_2_weigh_in,
    mi_scale_weigh_in,
    s400_weigh_in,
)
from tests.conftest import INTERCEPTOR, free_port, run_cli, start_server

# Fra's weight range catches the Mi Scale 2 weigh-in (85.15 kg): assignment by weight, then composition.
FRA_RANGE = "height_cm = 161\n"


def household(tmp_path: Path) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(ble_toml().replace(FRA_RANGE, FRA_RANGE + "weight_range_kg = [80, 90]\n", 1), encoding="utf-8")
    return path


def write_jsonl(path: Path, frames: list) -> Path:
    path.write_text("".join(json.dumps(frame.to_json()) + "\n" for frame in frames), encoding="utf-8")
    return path


def gateway(*args: str, data_dir: Path, log_path: Path) -> subprocess.Popen:
    with log_path.open("w") as log:
        return subprocess.Popen([str(INTERCEPTOR), "gateway", "--data-dir", str(data_dir), *args], stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "INTERCEPTOR_GATEWAY_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"})


def measurements(served_cli: object, config: Path, data_dir: Path) -> list[dict]:
    result = run_cli("measurements", "list", "--format", "json", "--config", str(config), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_gateway_to_server_across_a_server_restart(tmp_path: Path) -> None:
    config = household(tmp_path)
    server_dir = tmp_path / "server"
    weights = [40.0 + i * 0.55 for i in range(12)]
    weigh_ins = [s400_weigh_in(), mi_scale_2_weigh_in(S400_TIME + 40)]
    weigh_ins += [mi_scale_weigh_in(S400_TIME + 100 + i * 45, weight) for i, weight in enumerate(weights)]
    stream = write_jsonl(tmp_path / "frames.jsonl", interleave(weigh_ins, noise_per_frame=3))
    port = free_port()
    server = start_server(config, server_dir, port)
    forwarder = gateway("--server", f"http://127.0.0.1:{port}", "--from-file", str(stream), "--rate", "150",
                        "--max-retry", "0.5", data_dir=tmp_path / "gateway", log_path=tmp_path / "gateway.log")
    try:
        time.sleep(1.2)
        server.kill(signal.SIGKILL)  # mid-stream, without a chance to tidy up
        time.sleep(1.0)
        server = start_server(config, server_dir, port)
        assert forwarder.wait(timeout=30) == 0, (tmp_path / "gateway.log").read_text()
    finally:
        if forwarder.poll() is None:
            forwarder.kill()
        server_log = server.kill()
    gateway_log = (tmp_path / "gateway.log").read_text()
    assert "keeping frames in the spool" in gateway_log, gateway_log  # the restart was noticed
    assert "Traceback" not in server_log + gateway_log
    stored = measurements(None, config, server_dir)
    assert len(stored) == 2 + len(weights), [(item["device_id"], item["readings"]) for item in stored]
    s400 = [item for item in stored if item["device_id"] == S400_MAC]
    assert len(s400) == 1
    assert s400[0]["readings"] == {"weight_kg": 69.9, "heart_rate_bpm": 92.0, "impedance_low_ohm": 543.2,
                                   "impedance_high_ohm": 497.6}
    mi2 = [item for item in stored if item["device_id"] == MI2_MAC]
    assert len(mi2) == 1 and mi2[0]["readings"] == {"weight_kg": 85.15, "impedance_ohm": 428.0}
    assert mi2[0]["user"] == "fra" and "body_fat_pct" in mi2[0]["metrics"]
    mi1 = sorted(item["readings"]["weight_kg"] for item in stored if item["device_id"] == MI1_MAC)
    assert mi1 == pytest.approx(weights)


def test_gateway_rss_stays_small_while_scanning(tmp_path: Path) -> None:
    """`interceptor gateway`, fed frames without pause: its resident memory (acceptance: ≤ 40 MB)."""
    stream = write_jsonl(tmp_path / "frames.jsonl", interleave([s400_weigh_in()], noise_per_frame=30))
    port = free_port()  # nothing listens: the frames go to the spool, which is the worst case
    forwarder = gateway("--server", f"http://127.0.0.1:{port}", "--from-file", str(stream), "--loop", "--rate", "2000",
                        data_dir=tmp_path / "gateway", log_path=tmp_path / "gateway.log")
    try:
        time.sleep(3.0)
        status = Path(f"/proc/{forwarder.pid}/status").read_text()
    finally:
        forwarder.send_signal(signal.SIGINT)
        forwarder.wait(timeout=10)
    rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))
    assert rss_kb <= 40 * 1024, f"gateway RSS {rss_kb} kB"


def test_listen_only_prints_decoded_scale_frames(tmp_path: Path) -> None:
    stream = write_jsonl(tmp_path / "frames.jsonl", interleave([s400_weigh_in()[:1], mi_scale_2_weigh_in(10)[-2:]],
                                                               noise_per_frame=2))
    result = run_cli("gateway", "--listen-only", "--from-file", str(stream), "--key", f"{S400_MAC}={S400_KEY.upper()}")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["mac"] for line in lines] == [MI2_MAC, MI2_MAC, S400_MAC]
    assert lines[1]["decoded"][0]["removed"] is True
    assert lines[2]["decoded"][0]["weight_kg"] == 69.9 and lines[2]["errors"] == []
    without_key = run_cli("gateway", "--listen-only", "--from-file", str(stream))
    last = json.loads(without_key.stdout.splitlines()[-1])
    assert last["decoded"] == [] and last["errors"][0].startswith(f"no bind key for {S400_MAC}")


def test_gateway_needs_a_token_and_a_server(tmp_path: Path) -> None:
    stream = write_jsonl(tmp_path / "frames.jsonl", s400_weigh_in())
    no_server = run_cli("gateway", "--from-file", str(stream), env={**os.environ, "INTERCEPTOR_GATEWAY_TOKEN": "x"})
    assert no_server.returncode == 1 and "--server is needed" in no_server.stderr
    env = {key: value for key, value in os.environ.items() if key != "INTERCEPTOR_GATEWAY_TOKEN"}
    no_token = run_cli("gateway", "--server", "http://127.0.0.1:9", "--from-file", str(stream), env=env)
    assert no_token.returncode == 1 and "no token" in no_token.stderr
    assert "Traceback" not in no_server.stderr + no_token.stderr


def test_server_picks_up_a_new_token_without_restart(tmp_path: Path) -> None:
    """`serve --config FILE` watches FILE: a changed [ble] takes effect on the next request."""
    import urllib.error
    import urllib.request

    config = household(tmp_path)
    server = start_server(config, tmp_path / "server")

    def status(token: str) -> int:
        request = urllib.request.Request(f"http://127.0.0.1:{server.port}/api/v1/ble/frames", data=b'{"frames":[]}',
                                         headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    fresh = "a-new-token-after-a-leak-0123456789"
    try:
        assert (status(TOKEN), status(fresh)) == (200, 401)
        config.write_text(config.read_text(encoding="utf-8").replace(TOKEN, fresh), encoding="utf-8")
        later = config.stat().st_mtime_ns + 2_000_000_000  # visible even to a coarse file system clock
        os.utime(config, ns=(later, later))
        assert (status(TOKEN), status(fresh)) == (401, 200)
    finally:
        log = server.kill()
    assert "reloaded [ble]" in log and fresh not in log and TOKEN not in log


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_gateway_stops_on_a_signal_and_keeps_what_it_heard(tmp_path: Path, stop: signal.Signals) -> None:
    """Started in the background by a shell, a process inherits an ignored SIGINT; SIGTERM is what
    systemd sends. Either way the gateway stops within seconds, writes what it holds to its spool, and
    says how much is there."""
    stream = write_jsonl(tmp_path / "frames.jsonl", interleave([s400_weigh_in()], noise_per_frame=5))
    log_path = tmp_path / "gateway.log"
    with log_path.open("w") as log:
        forwarder = subprocess.Popen(
            [str(INTERCEPTOR), "gateway", "--data-dir", str(tmp_path / "gateway"), "--server",
             f"http://127.0.0.1:{free_port()}", "--from-file", str(stream), "--loop", "--rate", "500"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "INTERCEPTOR_GATEWAY_TOKEN": TOKEN},
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        time.sleep(2.0)
        forwarder.send_signal(stop)
        forwarder.wait(timeout=10)
    finally:
        if forwarder.poll() is None:
            forwarder.kill()
            forwarder.wait()
    text = log_path.read_text()
    assert forwarder.returncode == 0, text
    left = re.search(r"gateway: 0 frame\(s\) sent, 0 refused, (\d+) left in the spool", text)
    assert left and int(left.group(1)) > 0, text
    with sqlite3.connect(tmp_path / "gateway" / "gateway-spool.sqlite") as spool:
        assert spool.execute("SELECT count(*) FROM frames").fetchone()[0] == int(left.group(1))


def test_without_bluez_or_bleak_the_gateway_says_what_to_install(tmp_path: Path) -> None:
    """No system D-Bus runs here, as on a box without BlueZ; bleak is installed (the test extra)."""
    no_bluez = run_cli("gateway", "--listen-only")
    assert no_bluez.returncode == 1
    assert no_bluez.stderr.startswith("interceptor: cannot reach BlueZ over the system D-Bus (")
    assert "`sudo apt-get install bluez`" in no_bluez.stderr and "unexpected" not in no_bluez.stderr
    # bleak taken away, as in an install without the gateway extra: a stand-in for an uninstalled package.
    without_bleak = subprocess.run(
        [sys.executable, "-c", "import sys; sys.modules['bleak'] = None; from interceptor.cli import main; main()",
         "gateway", "--listen-only"], capture_output=True, text=True, timeout=60, check=False)
    assert without_bleak.returncode == 1
    assert f"install it with `{sys.executable} -m pip install bleak`" in without_bleak.stderr
    assert "scale-interceptor[gateway]'" not in without_bleak.stderr  # not on PyPI: never advised


def test_a_named_gateway_shows_on_the_devices_page_with_its_version_and_the_scales_signal(tmp_path: Path) -> None:
    """A real gateway process, named on its command line: the household page lists it (name,
    version, address, frames delivered) and the scale it heard with its signal."""
    config = household(tmp_path)
    frames = s400_weigh_in()
    stream = write_jsonl(tmp_path / "frames.jsonl", frames)
    server = start_server(config, tmp_path / "server")
    forwarder = gateway("--server", f"http://127.0.0.1:{server.port}", "--from-file", str(stream), "--name",
                        "bathroom-pi", data_dir=tmp_path / "gateway", log_path=tmp_path / "gateway.log")
    try:
        assert forwarder.wait(timeout=30) == 0, (tmp_path / "gateway.log").read_text()
        listed = wait_for_gateway(server.web_url)
        (pi,) = listed["gateways"]
        assert (pi["name"], pi["device_id"], pi["model"]) == ("bathroom-pi", "gateway:bathroom-pi",
                                                              "Interceptor gateway")
        assert (pi["firmware"], pi["address"], pi["frames"], pi["warnings"]) == (__version__, "127.0.0.1",
                                                                                 len(frames), [])
        (scale,) = listed["devices"]
        assert (scale["device_id"], scale["rssi_dbm"], scale["heard_by"]) == (S400_MAC, frames[-1].rssi,
                                                                              "bathroom-pi")
        with urllib.request.urlopen(server.web_url + "/devices", timeout=10) as response:
            page = response.read().decode()
        assert "Bluetooth gateways" in page and "bathroom-pi" in page and __version__ in page
        assert f"{frames[-1].rssi} dBm (heard by bathroom-pi)" in page
    finally:
        if forwarder.poll() is None:
            forwarder.kill()
        assert "Traceback" not in server.kill()


def wait_for_gateway(web_url: str) -> dict:
    """/api/v1/devices once a gateway is in it: its record is bookkeeping, written within a second."""
    deadline = time.monotonic() + 10
    while True:
        with urllib.request.urlopen(web_url + "/api/v1/devices", timeout=10) as response:
            listed = json.loads(response.read())
        if listed["gateways"] and listed["devices"] and listed["devices"][0]["rssi_dbm"] is not None:
            return listed
        assert time.monotonic() < deadline, listed
        time.sleep(0.2)
