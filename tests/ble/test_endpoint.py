"""POST /api/v1/ble/frames in-process: authentication, validation, one weigh-in per stepping-on,
re-sent batches, and a bind key fixed without a restart."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from interceptor.app import JOURNAL, PIPELINE, create_app
from interceptor.ble.frames import Frame
from interceptor.ble.routes import FRAMES_PATH, service_for
from interceptor.ble.service import BleService
from interceptor.ble.settings import BleSettings
from interceptor.config import load_config
from tests.ble.conftest import TOKEN, ble_toml
from tests.ble.vectors import by_id

AUTH = {"Authorization": f"Bearer {TOKEN}"}
S400_TIME = 1744250605.0


def frame(vector_id: str, at: float, data: str | None = None) -> dict[str, Any]:
    vector = by_id("service_data", vector_id)
    return Frame(time=at, mac=vector["mac"], address_type="public", rssi=-60,
                 service_data={vector["uuid"]: bytes.fromhex(data or vector["data"])}).to_json()


def s400_weigh_in() -> list[dict[str, Any]]:
    return [frame("S400-XB-1", S400_TIME + 1 + i * 0.3) for i in range(3)] + [
        frame("S400-XB-2", S400_TIME + 2 + i * 0.3) for i in range(3)]


def mi_scale_2_weigh_in(start: float) -> list[dict[str, Any]]:
    return ([frame("V2-XB-2", start)] + [frame("V2-XB-1", start + 1, "0224b20705040f020100008642")]
            + [frame("V2-XB-1", start + 2 + i) for i in range(3)] + [frame("V2-XB-3", start + 6)])


@pytest.fixture
async def client(aiohttp_client: Any, ble_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    monkeypatch.setenv("INTERCEPTOR_CONFIG", str(ble_config))  # the file the service watches
    config = load_config(ble_config, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    return await aiohttp_client(create_app(config))


def service(client: TestClient) -> BleService:
    pipeline = client.app[PIPELINE]
    return service_for(pipeline.config, pipeline)


async def test_token_is_required(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}, {"Authorization": f"Basic {TOKEN}"}):
        response = await client.post(FRAMES_PATH, json={"frames": []}, headers=headers)
        assert response.status == 401
        assert TOKEN not in await response.text()


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json", "body is not JSON"),
    (b'{"frame": []}', 'body must be a JSON object {"frames": [...]}'),
    (b'{"frames": [{"time": "2025-04-10T02:03:25Z", "mac": "nope"}]}', "frames[0]: 'nope' is not a MAC address"),
    (b'{"frames": [{"time": "yesterday", "mac": "8C:D0:B2:F6:BE:EF"}]}', "frames[0]: time 'yesterday' is not ISO"),
    (b'{"frames": [{"time": "2025-04-10T02:03:25", "mac": "8C:D0:B2:F6:BE:EF"}]}', "has no zone"),
    (b'{"frames": [{"time": "2025-04-10T02:03:25Z", "mac": "8C:D0:B2:F6:BE:EF", "service_data": {"fe95": "zz"}}]}',
     "service_data['fe95'] is not hexadecimal"),
    (b'{"frames": [{"time": "2025-04-10T02:03:25Z", "mac": "8C:D0:B2:F6:BE:EF", "rssi": 1000}]}', "rssi must be"),
])
async def test_bad_batches_are_refused_with_the_reason(client: TestClient, body: bytes, reason: str) -> None:
    response = await client.post(FRAMES_PATH, data=body, headers=AUTH)
    assert response.status == 422
    assert reason in (await response.json())["error"]


async def test_s400_and_mi_scale_2_become_one_measurement_each(client: TestClient) -> None:
    start = time.time() - 60
    batch = {"frames": s400_weigh_in() + mi_scale_2_weigh_in(start)}
    response = await client.post(FRAMES_PATH, json=batch, headers=AUTH)
    assert response.status == 200, await response.text()
    assert len((await response.json())["measurements"]) == 2
    again = await client.post(FRAMES_PATH, json=batch, headers=AUTH)  # the acknowledgement was lost
    assert (await again.json())["new_frames"] == 0
    stored = await client.app[JOURNAL].read(lambda reader: list(reader.measurements()))
    assert len(stored) == 2
    s400 = next(item for item in stored if item.device_id == "8C:D0:B2:F6:BE:EF")
    assert s400.readings == {"weight_kg": 69.9, "heart_rate_bpm": 92.0,
                             "impedance_low_ohm": 543.2, "impedance_high_ohm": 497.6}
    assert s400.device_model == "S400 bathroom"
    assert s400.taken_at.timestamp() == S400_TIME
    mi = next(item for item in stored if item.device_id == "50:FB:19:1B:B5:DC")
    assert mi.readings == {"weight_kg": 85.15, "impedance_ohm": 428.0}
    assert mi.device_model == "XMTZC02HM/XMTZC05HM/NUN4049CN"


async def test_non_scale_and_idle_frames_store_nothing(client: TestClient) -> None:
    other = Frame(time=S400_TIME, mac="11:22:33:44:55:66", service_data={"fef3": b"\x01\x02"},
                  manufacturer_data={0x004C: bytes(10)}).to_json()
    response = await client.post(FRAMES_PATH, json={"frames": [other, frame("IDLE-1", S400_TIME)]}, headers=AUTH)
    assert await response.json() == {"frames": 2, "scale_frames": 1, "new_frames": 0, "measurements": []}


async def test_bind_key_fixed_without_restart_recovers_the_weigh_in(
        client: TestClient, ble_config: Path, caplog: pytest.LogCaptureFixture) -> None:
    wrong = "02d2900363ef629c736a4549677acbee"
    ble_config.write_text(ble_toml(key=wrong), encoding="utf-8")
    _touch_later(ble_config)
    response = await client.post(FRAMES_PATH, json={"frames": s400_weigh_in()}, headers=AUTH)
    assert (await response.json())["measurements"] == []
    assert "wrong or outdated bind key for 8C:D0:B2:F6:BE:EF" in caplog.text
    assert wrong not in caplog.text
    ble_config.write_text(ble_toml(), encoding="utf-8")
    _touch_later(ble_config)
    recovered = await service(client).tick()
    assert len(recovered) == 1
    assert recovered[0].readings["impedance_high_ohm"] == 497.6


def _touch_later(path: Path) -> None:
    """Make the change visible to an mtime check even on a coarse-grained file system clock."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))


def test_ble_user_maps_the_s400_profile() -> None:
    from interceptor.ble.aggregate import Aggregator
    from interceptor.ble.decode import decode_frame
    from interceptor.ble.users import ble_user
    from tests.ble.streams import s400_weigh_in

    settings = BleSettings.model_validate({"devices": {"8C:D0:B2:F6:BE:EF": {
        "bind_key": "0728974d657a4b60964c1b1677f35f7c", "profiles": {"1": "fed", "2": "fra"}}}})
    aggregator = Aggregator()
    readings = [reading for frame in s400_weigh_in()
                for reading in aggregator.feed(frame, decode_frame(frame, settings.bind_key).samples, frame.time)]  # type: ignore[union-attr]
    assert [reading.device_user_id for reading in readings] == ["1"]
    assert ble_user(readings[0], settings) == "fed"
    assert ble_user(readings[0].model_copy(update={"device_user_id": "3"}), settings) is None
    assert ble_user(readings[0].model_copy(update={"device_id": "11:22:33:44:55:66"}), settings) is None


async def test_s400_weigh_in_is_fred_with_composition(client: TestClient) -> None:
    response = await client.post(FRAMES_PATH, json={"frames": s400_weigh_in()}, headers=AUTH)
    ids = (await response.json())["measurements"]
    [measurement] = (await client.app[JOURNAL].read(lambda reader: reader.measurements_by_id(ids))).values()
    assert measurement.user == "fed" and measurement.assignment == "device"
    assert measurement.metrics["body_fat_pct"].method == "s400"
    assert {"impedance_high_ohm", "impedance_low_ohm"} <= set(measurement.readings)


async def test_mi_scale_2_weigh_in_goes_to_the_person_whose_weight_range_fits(
    aiohttp_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Mi Scale 2 names nobody: weight decides (here a range, as for a person with no history yet)."""
    path = tmp_path / "interceptor.toml"
    path.write_text(ble_toml(extra='\n[[users]]\nslug = "max"\nname = "Max"\nshort_name = "MAX"\nsex = "male"\n'
                                   'birth_date = "1979-02-11"\nheight_cm = 178\nweight_range_kg = [80, 95]\n'))
    monkeypatch.setenv("INTERCEPTOR_CONFIG", str(path))
    config = load_config(path, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    client = await aiohttp_client(create_app(config))
    response = await client.post(FRAMES_PATH, json={"frames": mi_scale_2_weigh_in(time.time() - 60)}, headers=AUTH)
    ids = (await response.json())["measurements"]
    [measurement] = (await client.app[JOURNAL].read(lambda reader: reader.measurements_by_id(ids))).values()
    assert measurement.user == "max" and measurement.assignment == "weight"
    assert measurement.metrics["body_fat_pct"].method == "xiaomi"
    assert measurement.readings["impedance_ohm"] == 428.0
