"""Issue 11 item 3 against the real `interceptor` command: no secret in a capture file, the request log,
a log line, `config check`, `doctor`, `sync influx` or the outbox, and the data kept private."""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from interceptor.withings import scale
from interceptor.withings.scale import read_response
from tests.ble.conftest import TOKEN, ble_toml
from tests.capture.helpers import replay
from tests.conftest import HOUSEHOLD_TOML, Served, run_cli, start_server

SCALE_HASH = "0123456789abcdef0123456789abcdef"  # what scale.session_new_body sends
URL_SECRET = "urlsecret4242"
BODY_SECRET = "bodysecret4242"


def send_in_pieces(port: int, data: bytes, piece: int = 3) -> bytes:
    """One request written a few bytes at a time (so secrets straddle reads), and its response."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start in range(0, len(data), piece):
            connection.sendall(data[start:start + piece])
            time.sleep(0.0005)
        reader = connection.makefile("rb")
        return reader.readline()


def post(path: str, body: bytes, *headers: str) -> bytes:
    head = "".join(f"{header}\r\n" for header in headers)
    return (f"POST {path} HTTP/1.1\r\nHost: scalews.withings.net\r\nConnection: close\r\n{head}"
            f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


@pytest.fixture
def capturing(tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    """`serve --capture` with a BLE gateway token, as a user asked to share a capture would run it."""
    config = tmp_path / "interceptor.toml"
    config.write_text(ble_toml(), encoding="utf-8")
    capture_dir = tmp_path / "captures"
    served = start_server(config, tmp_path / "data", options=("--capture", str(capture_dir)))
    yield served, capture_dir
    served.kill()


def test_captures_the_request_log_and_the_log_hold_no_secret_and_stay_private(
        capturing: tuple[Served, Path]) -> None:
    served, capture_dir = capturing
    asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 60, weight_g=70000))
    frames = json.dumps({"frames": []}).encode()
    answers = [
        send_in_pieces(served.port, post("/api/v1/ble/frames", frames, f"Authorization: Bearer {TOKEN}")),
        send_in_pieces(served.port, post(f"/cgi-bin/session?hash={URL_SECRET}&x=1",
                                         f"action=new&auth=00:24:e4:06:59:dc&%68ash={BODY_SECRET}&mfgid=1".encode())),
        send_in_pieces(served.port, post("/cgi-bin/x%0d%1b[2KFORGED%20ERROR%20line", b"a=1")),
        send_in_pieces(served.port, post("/api/v1/ble/frames", b"{", "Authorization: Bearer wrong-" + TOKEN)),
    ]
    assert [answer.split()[1] for answer in answers] == [b"200", b"200", b"200", b"401"]
    log = served.kill()

    secrets = [TOKEN, SCALE_HASH, URL_SECRET, BODY_SECRET]
    files = sorted(capture_dir.glob("*.pcapng"))
    assert len(files) == 5
    for path in files:
        content = path.read_bytes()
        assert not [secret for secret in secrets if secret.encode() in content], path
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(capture_dir.stat().st_mode) == 0o700
    masked = b"".join(path.read_bytes() for path in files)
    assert b"Authorization: Bearer " + b"*" * len(TOKEN) in masked and b"hash=" + b"*" * len(SCALE_HASH) in masked
    # Masked byte for byte, the captures still replay as they were recorded.
    results, summary = replay(files[:1], _config(served))
    assert summary.errors == [] and summary.incompatible == 0 and len(results[0].exchanges) == 4

    assert stat.S_IMODE(served.data_dir.stat().st_mode) == 0o700
    for name in ("journal.sqlite", "requests.sqlite", "ble-frames.sqlite"):
        assert stat.S_IMODE((served.data_dir / name).stat().st_mode) == 0o600, name
    with sqlite3.connect(served.data_dir / "requests.sqlite") as db:
        logged = [f"{path} {bytes(body)!r}" for path, body in db.execute("SELECT path, body FROM requests")]
    assert any("hash=<masked>&x=1" in row and "%68ash=<masked>" in row for row in logged), logged
    assert not [secret for secret in secrets if secret in "".join(logged) + log]
    # The path as it was sent, escapes and all: no carriage return or terminal escape reaches the log.
    assert "\r" not in log and "\x1b" not in log and "/cgi-bin/x%0d%1b[2KFORGED%20ERROR%20line" in log


def _config(served: Served):  # the household the captures were made with
    from interceptor.config import load_config

    return load_config(served.config_path)


# -- InfluxDB secrets: URL userinfo, and servers that echo them -----------------------------------

PASSWORD = "hunter2-Pa55word"
V2_TOKEN = "sMkL0XAxu5MUCHNsJCS6j4aU4uqe8qYyBfSUx-N_v8WkdJJJxAuL0dLOtdg2DFb4QxP0-9Krq9Y0YSSU8BvJ2g=="


class _Echoing(http.server.BaseHTTPRequestHandler):
    """A stand-in for a misbehaving InfluxDB (or a proxy in front of one) that copies the request's
    Authorization header into its 401 error body, as the server the issue saw did; a real influxd
    does not, so it cannot show the leak."""

    def _refuse(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"error": f"unauthorized: {self.headers.get('Authorization')} was refused",
                           "message": f"unauthorized access, header Authorization: {self.headers.get('Authorization')}"
                           }).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _refuse

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def echoing_influx() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Echoing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def influx_toml(host_port: str, dialect: str) -> str:
    if dialect == "v2":
        return (f'[influx]\nurl = "http://{host_port}"\ndialect = "v2"\ntoken = "{V2_TOKEN}"\norg = "home"\n'
                'bucket = "b"\n')
    return (f'[influx]\nurl = "http://admin:{PASSWORD}@{host_port}"\ndatabase = "scales"\nusername = "admin"\n'
            f'password = "{PASSWORD}"\n')


def outbox_errors(data_dir: Path) -> list[str]:
    with sqlite3.connect(f"file:{data_dir / 'journal.sqlite'}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute("SELECT last_error FROM outbox WHERE last_error IS NOT NULL")]


@pytest.mark.parametrize("dialect", ["v1", "v2"])
def test_influx_secrets_never_reach_config_check_doctor_sync_the_log_or_the_outbox(
        tmp_path: Path, echoing_influx: str, dialect: str) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text(HOUSEHOLD_TOML + "\n[http]\nrate_limit = 0\n" + influx_toml(echoing_influx, dialect))
    data_dir = tmp_path / "data"
    secrets = [PASSWORD, V2_TOKEN, "YWRtaW46aHVudGVyMi1QYTU1d29yZA=="]  # the last: Basic admin:password
    outputs = []
    checked = run_cli("config", "check", "--config", str(config), "--data-dir", str(data_dir))
    assert checked.returncode == 0, checked.stderr
    outputs.append(checked.stdout + checked.stderr)
    doctor = run_cli("doctor", "--config", str(config), "--data-dir", str(data_dir))
    assert doctor.returncode == 1 and "FAIL  influxdb" in doctor.stdout and "unauthorized" in doctor.stdout
    outputs.append(doctor.stdout + doctor.stderr)

    served = start_server(config, data_dir)
    try:
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 60, weight_g=70000))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (last_errors := outbox_errors(data_dir)):
            time.sleep(0.1)
    finally:
        outputs.append(served.kill())
    assert last_errors and all("refused the" in error for error in last_errors)
    outputs += last_errors
    synced = run_cli("sync", "influx", "--config", str(config), "--data-dir", str(data_dir))
    assert synced.returncode == 1 and "refused the" in synced.stderr
    outputs.append(synced.stdout + synced.stderr)

    everything = "\n".join(outputs)
    assert not [secret for secret in secrets if secret in everything]
    assert "<masked>" in everything
    if dialect == "v1":
        assert f"http://admin:<masked>@{echoing_influx}" in everything


def test_a_config_error_about_the_url_does_not_echo_its_password(tmp_path: Path) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text(f'[influx]\nurl = "http://admin:{PASSWORD}@bad host:8086"\n')
    result = run_cli("config", "check", "--config", str(config))
    assert result.returncode == 2 and "influx.url" in result.stderr and PASSWORD not in result.stderr
    assert "http://admin:<masked>@bad host:8086" in result.stderr


def test_a_raw_socket_read_of_the_response_still_parses(capturing: tuple[Served, Path]) -> None:
    """The masking tap sits in front of aiohttp's parser, and never changes what aiohttp reads."""
    served, _ = capturing

    async def once() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(post("/cgi-bin/once?hash=abc", b"action=get&hash=def"))
        response = await read_response(reader)
        writer.close()
        return response.json()["status"]

    assert asyncio.run(once()) == 0


def test_a_data_directory_is_made_private_but_a_shared_sticky_one_is_left_alone(tmp_path: Path) -> None:
    """`--data-dir /tmp` as root must not close /tmp to every other user and service; a directory of
    ours left open by an older version is closed."""
    from interceptor.paths import private_file
    from interceptor.store.journal import Journal

    shared, own = tmp_path / "shared", tmp_path / "own"
    shared.mkdir()
    shared.chmod(0o1777)  # as /tmp
    own.mkdir()
    own.chmod(0o755)
    Journal(shared / "journal.sqlite").close()
    private_file(own / "requests.sqlite")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777
    assert stat.S_IMODE((shared / "journal.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE(own.stat().st_mode) == 0o700
