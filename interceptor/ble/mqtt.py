"""Raw advertisements from OpenMQTTGateway and Theengs Gateway, over MQTT (ble-scales.md §6.1–6.2).

Both publish one JSON object per advertisement on `home/<gateway>/BTtoMQTT/<MAC>`: `id` (MAC),
`mac_type`, `rssi`, `name`, `manufacturerdata` (company id little-endian first) and, for one UUID,
`servicedata` with `servicedatauuid`. They must be told to publish the raw data (Theengs
`publish_advdata`, OMG `pubadvdata`). `frame_from_mqtt` is sans-I/O; `subscribe` is the shell.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from typing import Any

from interceptor.ble.decode import UUID_MI_SCALE, UUID_MI_SCALE_2, UUID_MIBEACON
from interceptor.ble.frames import Frame, FrameError, normalise_mac, normalise_uuid, parse_hex
from interceptor.ble.gateways import mqtt_gateway
from interceptor.ble.mibeacon import SCALE_PRODUCTS
from interceptor.ble.service import BleService
from interceptor.ble.settings import MqttSettings
from interceptor.nesting import TooDeep, loads_json

log = logging.getLogger(__name__)

XIAOMI_COMPANY = 0x0157  # Mi Scales add it with their MAC as manufacturer data (reference §1.5)
_MI_NAMES = re.compile(r"MI[ _]?SCALE|MISCA|MIBFS|MIBCS", re.IGNORECASE)
MAX_BACKOFF_S = 60.0


def _guess_uuid(data: bytes, payload: dict[str, Any], manufacturer: dict[int, bytes]) -> str | None:
    """OMG sometimes drops `servicedatauuid` (vector MQ-2). Only a Xiaomi marker lets a 10- or
    13-byte payload count as a Mi Scale: 0x181D/0x181B are shared with other vendors' scales."""
    if len(data) >= 5 and int.from_bytes(data[2:4], "little") in SCALE_PRODUCTS:
        return UUID_MIBEACON
    xiaomi = XIAOMI_COMPANY in manufacturer or bool(_MI_NAMES.search(str(payload.get("name") or "")))
    if xiaomi and len(data) == 10:
        return UUID_MI_SCALE
    if xiaomi and len(data) == 13:
        return UUID_MI_SCALE_2
    return None


def frame_from_mqtt(payload: bytes, received: float) -> Frame | None:
    """None for messages that are not raw advertisements (decoded values, presence, LWT)."""
    try:
        document = loads_json(payload, "payload")
    except TooDeep as error:
        raise FrameError(str(error)) from None
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("id"), str):
        return None
    mac = normalise_mac(document["id"])
    manufacturer: dict[int, bytes] = {}
    if isinstance(document.get("manufacturerdata"), str):
        raw = parse_hex(document["manufacturerdata"], "manufacturerdata")
        if len(raw) >= 2:
            manufacturer[int.from_bytes(raw[:2], "little")] = raw[2:]
    service: dict[str, bytes] = {}
    if isinstance(document.get("servicedata"), str):
        data = parse_hex(document["servicedata"], "servicedata")
        uuid_text = document.get("servicedatauuid")
        uuid = normalise_uuid(uuid_text) if isinstance(uuid_text, str) else _guess_uuid(data, document, manufacturer)
        if uuid is not None:
            service[uuid] = data
    rssi = document.get("rssi")
    mac_type = document.get("mac_type")
    return Frame(
        time=received, mac=mac,
        address_type="public" if mac_type == 0 else "random" if mac_type == 1 else "unknown",
        rssi=rssi if isinstance(rssi, int) and not isinstance(rssi, bool) and -128 <= rssi <= 127 else None,
        service_data=service, manufacturer_data=manufacturer,
        name=document["name"][:248] if isinstance(document.get("name"), str) else None,
    )


async def handle(topic: str, payload: bytes, service: BleService, received: float) -> None:
    try:
        frame = frame_from_mqtt(payload, received)
    except FrameError as error:
        log.warning("ble: MQTT message on %s not understood: %s (payload %r)", topic, error, payload[:512])
        return
    if frame is not None:
        await service.accept([frame], received, gateway=mqtt_gateway(topic))


async def subscribe(settings: MqttSettings, service: BleService) -> None:
    """Runs until cancelled; reconnects with a growing pause (at most a minute) when the broker goes."""
    import aiomqtt

    backoff = 1.0
    while True:
        try:
            async with aiomqtt.Client(
                settings.host, settings.port, username=settings.username,
                password=settings.password.get_secret_value() if settings.password else None,
                identifier=settings.client_id,
            ) as client:
                await client.subscribe(settings.topic)
                log.info("ble: subscribed to %s on mqtt://%s:%d", settings.topic, settings.host, settings.port)
                backoff = 1.0
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
                    try:
                        await handle(str(message.topic), payload, service, time.time())
                    except Exception:  # the journal failed: the frames stay in the frame log
                        log.exception("ble: storing frames from MQTT failed")
        except aiomqtt.MqttError as error:
            log.warning("ble: MQTT broker %s:%d: %s; retrying in %.0f s", settings.host, settings.port, error, backoff)
        await asyncio.sleep(backoff)
        backoff = min(backoff * 2, MAX_BACKOFF_S)
