"""Gateways as devices, in-process: a batch names its gateway (or its address does), a bad `gateway`
object is refused with nothing stored, and the book writes each gateway at a bounded rate into a
bounded set of devices."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from interceptor.app import JOURNAL
from interceptor.ble.frames import FrameError
from interceptor.ble.gatewaybook import MAX_GATEWAYS, WRITE_EVERY_S, GatewayBook
from interceptor.ble.gateways import MQTT_MODEL, GatewayId, gateway_from_json, mqtt_gateway
from interceptor.model import DeviceState
from interceptor.store.journal import Journal
from tests.ble.test_endpoint import AUTH, FRAMES_PATH, client, s400_weigh_in

__all__ = ["client"]  # the fixture, used by name

S400 = "8C:D0:B2:F6:BE:EF"


async def devices(client: TestClient) -> dict[str, DeviceState]:
    journal = client.app[JOURNAL]
    journal.flush_later()  # the bookkeeping would ride along within half a second anyway
    await journal.write(lambda tx: None, durable=False)
    return {state.device_id: state for state in await journal.read(lambda reader: reader.devices())}


async def test_a_named_gateway_becomes_a_device_and_the_scale_keeps_its_signal(client: TestClient) -> None:
    batch = {"gateway": {"name": "bathroom-pi", "version": "0.1.0"}, "frames": s400_weigh_in()}
    response = await client.post(FRAMES_PATH, json=batch, headers=AUTH)
    assert response.status == 200, await response.text()
    found = await devices(client)
    gateway = found["gateway:bathroom-pi"]
    assert (gateway.source, gateway.model, gateway.firmware) == ("gateway", "Interceptor gateway", "0.1.0")
    assert (gateway.address, gateway.frames) == ("127.0.0.1", 6)
    assert (found[S400].rssi_dbm, found[S400].heard_by) == (-60, "bathroom-pi")


async def test_a_batch_without_gateway_is_attributed_to_the_client_address(client: TestClient) -> None:
    response = await client.post(FRAMES_PATH, json={"frames": s400_weigh_in()}, headers=AUTH)
    assert response.status == 200
    gateway = (await devices(client))["gateway:127.0.0.1"]
    assert (gateway.source, gateway.firmware, gateway.address) == ("gateway", None, "127.0.0.1")


@pytest.mark.parametrize(("gateway", "reason"), [
    ("bathroom-pi", "gateway must be a JSON object"),
    ({"version": "1"}, "gateway.name must be a printable string of 1 to 64 characters"),
    ({"name": "x" * 65}, "gateway.name must be"),
    ({"name": "pi\n"}, "gateway.name must be"),
    ({"name": "pi", "version": 3}, "gateway.version must be"),
    ({"name": "pi", "token": "x"}, "unknown gateway fields ['token']"),
])
async def test_a_malformed_gateway_is_refused_naming_the_field_and_nothing_is_stored(
        client: TestClient, gateway: Any, reason: str) -> None:
    response = await client.post(FRAMES_PATH, json={"gateway": gateway, "frames": s400_weigh_in()}, headers=AUTH)
    assert response.status == 422
    assert reason in (await response.json())["error"]
    assert await devices(client) == {}
    assert await client.app[JOURNAL].read(lambda reader: reader.count()) == 0


async def test_unknown_batch_fields_are_refused(client: TestClient) -> None:
    response = await client.post(FRAMES_PATH, json={"frames": [], "gatway": {"name": "pi"}}, headers=AUTH)
    assert response.status == 422
    assert "unknown batch fields ['gatway']" in (await response.json())["error"]


def test_gateway_object_accepts_name_alone_and_refuses_an_empty_name() -> None:
    assert gateway_from_json({"name": "pi"}) == GatewayId("pi")
    with pytest.raises(FrameError, match=r"gateway\.name"):
        gateway_from_json({"name": ""})


@pytest.mark.parametrize(("topic", "name"), [
    ("home/OMG_ESP32_BLE/BTtoMQTT/C8478CC09589", "OMG_ESP32_BLE"),
    ("home/TheengsGateway/BTtoMQTT/C8:47:8C:C0:95:89", "TheengsGateway"),
    ("BTtoMQTT/C8478CC09589", None),
    ("scales/raw", None),
])
def test_the_mqtt_gateway_is_named_by_its_topic(topic: str, name: str | None) -> None:
    found = mqtt_gateway(topic)
    assert (found.name if found else None) == name
    assert found is None or found.model == MQTT_MODEL


async def test_many_batches_make_one_write_per_gateway_per_pause(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    book = GatewayBook(journal)
    writes = []
    original = journal.write_later
    journal.write_later = lambda job, what: (writes.append(what), original(job, what))  # type: ignore[method-assign]
    pi = GatewayId("pi", "1.0")
    for second in range(100):
        book.heard(pi, "192.168.1.5", 2, {}, 1000.0 + second / 50)  # 100 batches in 2 s
    book.flush(1000.0 + WRITE_EVERY_S + 2)  # the end of the burst is written once its pause is over
    assert writes == ["gateway pi", "gateway pi"]
    await asyncio.sleep(0)
    journal.flush_later()
    await journal.write(lambda tx: None, durable=False)
    state = await journal.read(lambda reader: reader.device("gateway:pi"))
    assert state is not None and state.frames == 200
    assert state.last_seen.timestamp() == pytest.approx(1000.0 + 99 / 50)
    history = await journal.read(lambda reader: list(reader.device_reports()))
    assert len(history) == 1  # the firmware is reported once, not with every write
    journal.close()


async def test_at_most_a_fixed_number_of_gateways_are_kept(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    book = GatewayBook(journal)
    for index in range(MAX_GATEWAYS + 6):
        book.heard(GatewayId(f"stranger-{index}"), "10.0.0.9", 1, {"11:22:33:44:55:66": -70}, 1000.0 + index)
    journal.flush_later()
    await journal.write(lambda tx: None, durable=False)
    kept = await journal.read(lambda reader: reader.devices("gateway"))
    assert len(kept) == MAX_GATEWAYS
    assert kept[0].device_id == f"gateway:stranger-{MAX_GATEWAYS + 5}"  # the newest stay
    assert await journal.read(lambda reader: reader.device("11:22:33:44:55:66")) is None  # no row for a stranger MAC
    journal.close()


async def test_news_held_back_is_written_when_the_server_stops(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    book = GatewayBook(journal)
    book.heard(GatewayId("pi"), None, 1, {}, 1000.0)
    book.heard(GatewayId("pi"), None, 4, {}, 1001.0)  # within the pause: held back
    book.flush_all(1001.5)
    journal.close()  # writes the bookkeeping, as `serve` does on its way out
    with journal.reader() as reader:
        state = reader.device("gateway:pi")
    assert state is not None and (state.frames, state.last_seen.timestamp()) == (5, 1001.0)
