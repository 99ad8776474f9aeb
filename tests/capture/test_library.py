"""Every capture in `captures/` replays to the measurements its expected file states (a new pcap is a new test)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from interceptor.capture.synth import TcpSynthesiser, write_capture
from interceptor.config import load_config
from tests.capture.helpers import CAPTURES, HOUSEHOLD, comparable, mismatch, replay
from tests.conftest import run_cli

LIBRARY = sorted(path for path in CAPTURES.iterdir() if path.suffix in (".pcap", ".pcapng"))


def expected_path(capture: Path) -> Path:
    return capture.with_suffix(".expected.json")


def test_the_library_has_every_kind_of_conversation_the_issue_asks_for() -> None:
    names = {path.stem for path in LIBRARY}
    assert {"wbs01-weigh-in", "ws50-weigh-in-and-environment", "ws50-two-queued-weigh-ins",
            "ws50-household-three-people", "wbs01-unknown-endpoint", "wbs01-split-segments-retransmission"} <= names


@pytest.mark.parametrize("capture", LIBRARY, ids=lambda path: path.name)
def test_capture_replays_to_its_expected_measurements(capture: Path) -> None:
    assert expected_path(capture).exists(), f"{capture.name} needs {expected_path(capture).name} next to it"
    expected = json.loads(expected_path(capture).read_text())
    results, summary = replay([capture], load_config(HOUSEHOLD))

    assert summary.errors == [] and summary.warnings == []
    measurements = [comparable(measurement.as_json()) for result in results for exchange in result.exchanges
                    for measurement in exchange.measurements]
    assert mismatch(expected["measurements"], measurements) is None, mismatch(expected["measurements"], measurements)
    differences = [
        f"conversation {result.conversation.number} exchange {exchange.index} {exchange.request.method} "
        f"{exchange.request.target}: {difference}"
        for result in results for exchange in result.exchanges for difference in exchange.differences
    ]
    assert sorted(differences) == sorted(expected["known_differences"])
    for result in results:
        assert result.exchanges, f"conversation {result.conversation.number} has no requests"
        for exchange in result.exchanges:
            assert exchange.error is None, exchange.error
            assert exchange.recorded is not None and exchange.replayed is not None


def test_the_cli_replays_a_capture_in_process_and_leaves_the_configured_journal_alone(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    result = run_cli("replay", "--config", str(HOUSEHOLD), "--data-dir", str(data_dir), "--format", "json",
                     str(CAPTURES / "wbs01-weigh-in.pcapng"))

    assert result.returncode == 0, result.stderr
    *conversations, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert summary["summary"]["exchanges"] == 4 and summary["summary"]["compatible"] == 4
    [conversation] = conversations
    assert conversation["client"] == "192.168.1.20:49152" and conversation["handshake"] is True
    _once, session, store, _delete = conversation["exchanges"]
    assert session["recorded"] == {"http_status": 200, "status": 0, "framing": "chunked", "complete": True}
    assert session["replayed"] == session["recorded"]
    [stored] = store["measurements"]
    assert stored["user"] == "kim" and stored["readings"]["weight_kg"] == pytest.approx(66.85)
    assert any("session id 6256-51492c6d-5483c37e replaced" in note for note in store["notes"])
    assert not data_dir.exists(), "an in-process replay must not create the configured journal"


def test_a_reply_that_differs_is_shown_in_the_table_and_exits_3() -> None:
    result = run_cli("replay", "--config", str(HOUSEHOLD), str(CAPTURES / "ws50-household-three-people.pcap"))

    assert result.returncode == 3, result.stderr
    assert "DIFFERS" in result.stdout and "missing body.sp.users[].fn (string)" in result.stdout
    assert "stored: body" in result.stdout and "user=fra" in result.stdout
    assert "3 differ" in result.stdout.splitlines()[-1]


def test_other_http_in_a_router_capture_is_reported_and_not_replayed(tmp_path: Path) -> None:
    synth = TcpSynthesiser(("192.168.1.40", 50000), ("93.184.216.34", 80))
    frames = synth.handshake(1.7e9) + synth.send(synth.client, b"GET / HTTP/1.1\r\nHost: example.org\r\n\r\n", 1.7e9)
    frames += synth.send(synth.server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", 1.7e9) + synth.close(1.7e9)
    path = tmp_path / "router.pcapng"
    with path.open("wb") as stream:
        write_capture(stream, synth.linktype, frames)
    [result], summary = replay([path], load_config(HOUSEHOLD))
    assert result.not_replayed == "no request to /cgi-bin/: not a scale conversation" and result.exchanges == []
    assert summary.conversations == 1 and summary.exchanges == 0
