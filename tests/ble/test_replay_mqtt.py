"""Other inputs into the same aggregator: a btsnoop capture through `interceptor ble replay`, and
OpenMQTTGateway/Theengs frames from a real mosquitto into a running `interceptor serve`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.publish as publish
import pytest

from interceptor.ble.btsnoop import DATALINK_MONITOR
from tests.ble.btsnoop_writer import btsnoop, extended_reports, legacy_report
from tests.ble.conftest import Broker, ble_toml
from tests.ble.streams import MI2_MAC, S400_MAC, interleave, mi_scale_2_weigh_in, s400_weigh_in
from tests.ble.vectors import VECTORS
from tests.conftest import run_cli, start_server


def _list(config: Path, data_dir: Path) -> list[dict]:
    result = run_cli("measurements", "list", "--format", "json", "--config", str(config), "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("datalink", [1002, DATALINK_MONITOR])
def test_btsnoop_capture_replays_into_the_journal(tmp_path: Path, datalink: int) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text(ble_toml(), encoding="utf-8")
    frames = interleave([s400_weigh_in(), mi_scale_2_weigh_in(1744250700.0)], noise_per_frame=2)
    events = [(frame.time, legacy_report(frame)) for frame in frames[: len(frames) // 2]]
    events += [(frame.time, event) for frame in frames[len(frames) // 2:] for event in extended_reports(frame, 20)]
    events.append((1744250800.0, bytes.fromhex("3e0502")))  # a corrupt event: logged, skipped
    capture = tmp_path / "capture.btsnoop"
    capture.write_bytes(btsnoop(events, datalink))
    data_dir = tmp_path / "data"
    dry = run_cli("ble", "replay", str(capture), "--config", str(config), "--data-dir", str(data_dir))
    assert dry.returncode == 0 and "2 weigh-in(s) found (a dry run: --ingest stores them)" in dry.stderr
    assert not data_dir.exists()  # like `replay`, nothing is stored without --ingest
    for _ in range(2):  # a second replay of the same capture stores nothing new
        result = run_cli("ble", "replay", "--ingest", str(capture), "--config", str(config), "--data-dir",
                         str(data_dir))
        assert result.returncode == 0, result.stderr
        assert "2 weigh-in(s) in the journal" in result.stderr
    stored = _list(config, data_dir)
    assert sorted(item["device_id"] for item in stored) == sorted([S400_MAC, MI2_MAC])
    assert next(item for item in stored if item["device_id"] == S400_MAC)["readings"]["impedance_high_ohm"] == 497.6


def test_reference_btsnoop_replays(tmp_path: Path) -> None:
    """BTSNOOP-1 holds a removed frame and one stabilized Mi Scale frame: one weigh-in, 86.55 kg."""
    capture = tmp_path / "btsnoop-1.log"
    capture.write_bytes(bytes.fromhex(VECTORS["btsnoop"][0]["file"]))
    result = run_cli("ble", "replay", str(capture), "--data-dir", str(tmp_path / "data"), "--format", "json")
    assert result.returncode == 0, result.stderr
    assert [item["weight_kg"] for item in json.loads(result.stdout)] == [86.55]
    assert "2 advertisement(s), 2 from scales, 1 weigh-in(s)" in result.stderr


def test_replay_of_a_non_capture_says_so(tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello", encoding="utf-8")
    result = run_cli("ble", "replay", str(bogus), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "not a btsnoop file" in result.stderr and "Traceback" not in result.stderr


def _omg(frame: object, with_uuid: bool = True) -> str:
    """OpenMQTTGateway's raw JSON for a frame (ble-vectors §6, MQ-1)."""
    [(uuid, data)] = frame.service_data.items()  # type: ignore[attr-defined]
    payload = {"id": frame.mac, "mac_type": 0, "adv_type": 0, "rssi": frame.rssi,  # type: ignore[attr-defined]
               "servicedata": data.hex()}
    if with_uuid:
        payload["servicedatauuid"] = f"0x{uuid}"
    return json.dumps(payload)


def test_mqtt_frames_from_a_real_broker(tmp_path: Path, mosquitto: Broker) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text(ble_toml(extra=f'[ble.mqtt]\nhost = "127.0.0.1"\nport = {mosquitto.port}\n'), encoding="utf-8")
    server = start_server(config, tmp_path / "data")
    try:
        deadline = time.monotonic() + 10
        while "subscribed to home/+/BTtoMQTT/#" not in server.log_path.read_text():
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.05)
        messages = [{"topic": item["topic"], "payload": item["payload"]} for item in VECTORS["mqtt"]]
        messages += [{"topic": "home/OMG/BTtoMQTT/garbage", "payload": "not json"},
                     {"topic": "home/OMG/BTtoMQTT/bad", "payload": '{"id": "not-a-mac", "servicedata": "00"}'}]
        for frame in s400_weigh_in():
            messages.append({"topic": "home/TheengsGateway/BTtoMQTT/8CD0B2F6BEEF", "payload": _omg(frame)})
        for frame in mi_scale_2_weigh_in(0.0):
            messages.append({"topic": "home/OMG/BTtoMQTT/50FB191BB5DC", "payload": _omg(frame)})
        publish.multiple(messages, hostname="127.0.0.1", port=mosquitto.port)
        deadline = time.monotonic() + 20
        while len(stored := _list(config, tmp_path / "data")) < 2:
            assert time.monotonic() < deadline, server.log_path.read_text()
            time.sleep(0.2)
        time.sleep(0.5)
        stored = _list(config, tmp_path / "data")
    finally:
        log = server.kill()  # its bookkeeping is written on the way out
    assert sorted(item["device_id"] for item in stored) == sorted([S400_MAC, MI2_MAC])
    listed = run_cli("devices", "list", "--format", "json", "--config", str(config), "--data-dir",
                     str(tmp_path / "data"))
    found = {device["device_id"]: device for device in json.loads(listed.stdout)}
    for name in ("TheengsGateway", "OMG"):  # the gateway id of the topic
        gateway = found[f"gateway:{name}"]
        assert (gateway["source"], gateway["model"], gateway["firmware"]) == (
            "gateway", "OpenMQTTGateway/Theengs gateway", None)
    assert found[S400_MAC]["heard_by"] == "TheengsGateway" and found[S400_MAC]["rssi_dbm"] == -60
    assert "MQTT message on home/OMG/BTtoMQTT/bad not understood" in log
    assert "Traceback" not in log
