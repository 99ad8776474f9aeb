"""`interceptor serve --capture` writes conversations that replay to what was stored (real process,
loopback); `interceptor replay` reads what tcpdump captured on loopback against `interceptor serve`."""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus

import pytest

from interceptor.capture.conversations import read_conversations
from interceptor.capture.record import Recorder, RecordingSettings
from interceptor.config import load_config
from interceptor.withings import scale
from interceptor.withings.scale import ScaleIdentity, read_response, request_bytes
from tests.capture.helpers import comparable, replay
from tests.conftest import Served, run_cli, start_server

WS50 = ScaleIdentity(mac="00:24:e4:06:59:dc", battery_pct=42)
WBS01 = ScaleIdentity(mac="00:24:e4:ff:fc:01")


def stored(served: Served) -> list[dict]:
    result = served.cli("measurements", "list", "--format", "json", "--kind", "all")
    assert result.returncode == 0, result.stderr
    return [comparable(item) for item in json.loads(result.stdout)]


async def ws50_conversation(port: int, meastime: int) -> None:
    """once, session, a WS-50 store (heart rate, type 16), environment data, session delete."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def exchange(path: str, body: bytes) -> dict:
        writer.write(request_bytes(path, body))
        await writer.drain()
        return (await read_response(reader)).json()

    await exchange("/cgi-bin/once", scale.once_body())
    sessionid = (await exchange("/cgi-bin/session", scale.session_new_body(WS50)))["body"]["sessionid"]
    group = {"meastime": meastime, "measures": [{"value": 84683, "type": 1, "unit": -3},
                                                {"value": 559, "type": 16, "unit": 0},
                                                {"value": 111, "type": 11, "unit": 0}]}
    await exchange("/cgi-bin/measure", scale.ws50_store_body(WS50, sessionid, 2507298, [group]))
    environment = [{"meastime": meastime - 600, "measures": [
        {"data": {"mantissa": 202, "exponent": -1, "unit": 11}, "type": 12},
        {"data": {"mantissa": 655, "exponent": 0, "unit": 12}, "type": 35}]}]
    await exchange("/cgi-bin/v2/measure",
                   f"sessionid={sessionid}&measuregrps={quote_plus(json.dumps(environment))}".encode())
    await exchange("/cgi-bin/session", scale.session_delete_body(sessionid))
    writer.close()
    await writer.wait_closed()


@pytest.fixture
def recording_server(config_path: Path, data_dir: Path, tmp_path: Path) -> Iterator[tuple[Served, Path]]:
    """`interceptor serve --capture DIR` as a real process on a free loopback port."""
    capture_dir = tmp_path / "captures"
    served = start_server(config_path, data_dir, options=("--capture", str(capture_dir)))
    yield served, capture_dir
    served.kill()


def test_recorded_conversations_replay_to_what_the_server_stored(recording_server: tuple[Served, Path],
                                                                  config_path: Path) -> None:
    served, capture_dir = recording_server
    now = int(time.time())
    asyncio.run(scale.weigh_in("127.0.0.1", served.port, scale=WBS01, meastime=now - 40, weight_g=66850))
    asyncio.run(ws50_conversation(served.port, now - 20))
    served.kill()  # files are complete once their connection closed; stopping makes sure

    files = sorted(capture_dir.glob("*.pcapng"))
    assert len(files) == 2 and not list(capture_dir.glob("*.part"))
    expected = stored(served)
    assert [item["kind"] for item in expected] == ["environment", "body", "body"]
    config = load_config(config_path)
    replayed = []
    for path in files:
        [conversation] = list(read_conversations(path))
        assert conversation.handshake and conversation.end == "fin" and conversation.client[0] == "127.0.0.1"
        results, summary = replay([path], config)
        assert summary.errors == [] and summary.incompatible == 0 and summary.not_compared == 0
        replayed += [comparable(item.as_json()) for result in results for exchange in result.exchanges
                     for item in exchange.measurements]
    assert sorted(replayed, key=lambda item: item["taken_at"]) == expected
    checked = subprocess.run(["tcpdump", "-nn", "-vv", "-r", str(files[0])], capture_output=True, text=True,
                             timeout=30, check=False)
    assert checked.returncode == 0 and "incorrect" not in checked.stdout and "(correct)" in checked.stdout


def test_the_capture_directory_keeps_the_newest_files_within_both_limits(tmp_path: Path) -> None:
    settings = RecordingSettings(tmp_path / "captures", max_files=3, max_bytes=5000)
    recorder = Recorder(settings)
    for number in range(5):
        recording = recorder.open(("127.0.0.1", 40000 + number), ("127.0.0.1", 80), 1.7e9 + number)
        assert recording is not None
        recording.received(b"x" * (200 if number < 4 else 8000), 1.7e9 + number)
        recording.close(1.7e9 + number + 0.5)
    names = sorted(path.name for path in settings.directory.iterdir())
    sizes = [path.stat().st_size for path in sorted(settings.directory.iterdir())]
    assert len(names) <= 3 and sum(sizes) <= 5000
    assert names[-1].endswith("-127.0.0.1-40004.pcapng"), "the newest is kept, cut at the size cap"
    [conversation] = list(read_conversations(settings.directory / names[-1]))
    assert conversation.notes == (
        "requests from 127.0.0.1:40004: 8000 bytes missing from the capture at stream offset 0",)


def test_replay_reads_a_tcpdump_capture_of_interceptor_serve_on_loopback(served: Served, tmp_path: Path) -> None:
    if shutil.which("tcpdump") is None:
        pytest.fail("tcpdump is not installed: run ./scripts/setup.sh --test (scripts/debian-test-packages.txt)")
    pcap = tmp_path / "loopback.pcap"
    # --immediate-mode: without it, packets still in the kernel's ring when tcpdump is stopped are lost.
    command = ["tcpdump", "-i", "lo", "--immediate-mode", "-U", "-n", "-w", str(pcap), f"tcp port {served.port}"]
    tcpdump = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert tcpdump.stderr is not None
        started = tcpdump.stderr.readline()  # "listening on lo, ..." once the capture runs
        assert "listening on lo" in started, f"tcpdump did not start: {started}{tcpdump.stderr.read()}"
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 30, weight_g=86812))
        time.sleep(0.5)
    finally:
        tcpdump.send_signal(signal.SIGTERM)
        tcpdump.wait(timeout=10)
    result = run_cli("replay", "--config", str(served.config_path), "--format", "json", str(pcap))

    assert result.returncode == 0, result.stderr
    *conversations, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["exchanges"] == 4 and summary["summary"]["compatible"] == 4
    replayed = [comparable(item) for conversation in conversations for exchange in conversation["exchanges"]
                for item in exchange["measurements"]]
    assert replayed == stored(served)


def test_replay_against_a_running_server_reads_the_measurements_back_from_its_journal(served: Served) -> None:
    capture = Path(__file__).resolve().parents[2] / "captures" / "ws50-weigh-in-and-environment.pcap"
    result = served.cli("replay", "--against", f"http://127.0.0.1:{served.port}", "--format", "json", str(capture))

    assert result.returncode == 0, result.stderr
    *conversations, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["measurements"] == 3 and summary["summary"]["incompatible"] == 0
    replayed = [comparable(item) for conversation in conversations for exchange in conversation["exchanges"]
                for item in exchange["measurements"]]
    assert sorted(replayed, key=lambda item: item["taken_at"]) == stored(served)
    assert {item["user"] for item in replayed} == {"fed", None}
    again = served.cli("replay", "--against", f"http://127.0.0.1:{served.port}", "--format", "json", str(capture))
    summary = json.loads(again.stdout.splitlines()[-1])["summary"]
    assert summary["measurements"] == 0, "a re-sent weigh-in is stored once"
