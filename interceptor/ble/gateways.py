"""Who delivered a batch of frames: a gateway's identity, sans-I/O and light (the gateway imports it).

A gateway names itself in its batch (`"gateway": {"name", "version"}`); an older gateway or a curl
is known by its client address, and an OpenMQTTGateway/Theengs gateway by the gateway id in its
topic (`home/<gateway>/BTtoMQTT/<MAC>`). Each becomes a device `gateway:<name>` (source `gateway`,
interceptor/ble/gatewaybook.py) so the household page and Home Assistant show it next to the scales.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from interceptor.ble.frames import FrameError

SOURCE = "gateway"  # `DeviceState.source` of a gateway
MODEL = "Interceptor gateway"
MQTT_MODEL = "OpenMQTTGateway/Theengs gateway"
MAX_NAME = 64
MAX_VERSION = 32


@dataclass(frozen=True)
class GatewayId:
    """Who delivered frames: its name (or client address), what it runs, and what kind it is."""

    name: str
    version: str | None = None
    model: str = MODEL

    @property
    def device_id(self) -> str:
        return f"{SOURCE}:{self.name}"


def _text(value: Any, what: str, limit: int) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= limit or not value.isprintable():
        raise FrameError(f"{what} must be a printable string of 1 to {limit} characters")
    return value


def gateway_from_json(item: Any) -> GatewayId:
    """The batch's `gateway` object, strict like its frames: FrameError names the bad field."""
    if not isinstance(item, dict):
        raise FrameError('gateway must be a JSON object {"name": ..., "version": ...}')
    unknown = set(item) - {"name", "version"}
    if unknown:
        raise FrameError(f"unknown gateway fields {sorted(unknown)}; send only name and version")
    version = item.get("version")
    return GatewayId(_text(item.get("name"), "gateway.name", MAX_NAME),
                     None if version is None else _text(version, "gateway.version", MAX_VERSION))


def mqtt_gateway(topic: str) -> GatewayId | None:
    """The gateway id of `home/<gateway>/BTtoMQTT/<MAC>`; None when the topic carries none."""
    parts = topic.split("/")
    if "BTtoMQTT" not in parts[1:]:
        return None
    name = parts[parts.index("BTtoMQTT", 1) - 1]
    if not name or len(name) > MAX_NAME or not name.isprintable():
        return None
    return GatewayId(name, model=MQTT_MODEL)
