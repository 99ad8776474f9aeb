"""One heard advertisement, in the shape every input (gateway, btsnoop, MQTT) is turned into.

The gateway forwards raw frames and the server keeps the only decoder, so a frame carries what the
radio heard (service data by UUID, manufacturer data by company id), never a decoded value. Plain
dataclasses, not pydantic: the gateway runs on a Raspberry Pi and must stay small.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

AddressType = Literal["public", "random", "unknown"]

# `Reading.source` of everything that arrives over Bluetooth (gateway, btsnoop, MQTT).
SOURCE = "ble"

# Service-data UUIDs that can carry a scale frame: Mi Scale, Mi Scale 2, MiBeacon (S400/S200).
SCALE_UUIDS = frozenset({"181d", "181b", "fe95"})

# Bluetooth Base UUID: a 16-bit UUID xxxx stands for 0000xxxx-0000-1000-8000-00805f9b34fb.
_BASE_UUID_SUFFIX = "-0000-1000-8000-00805f9b34fb"
LATEST_TIME = 4_102_444_800.0  # 2100-01-01: later (or pre-1970) times are a broken clock or a bad frame
_MAC = re.compile(r"^([0-9A-F]{2})" + r"[:-]?([0-9A-F]{2})" * 5 + "$")


class FrameError(ValueError):
    """A frame that cannot be represented (bad MAC, bad hex, bad UUID); the message says which part."""


def normalise_mac(text: str) -> str:
    """Upper-case colon form, as `bluetoothctl` and bleak show it; raises FrameError otherwise."""
    match = _MAC.match(text.strip().upper())
    if match is None:
        raise FrameError(f"{text!r} is not a MAC address; write e.g. 'C8:47:8C:C0:95:89'")
    return ":".join(match.groups())


def normalise_uuid(text: str) -> str:
    """'181d' for SIG 16-bit UUIDs (given as '0x181D', '181d' or the full base form), else the
    full lower-case 128-bit form; every input names service data the same way."""
    value = text.strip().lower()
    value = value.removeprefix("0x")
    if re.fullmatch(r"[0-9a-f]{4}", value):
        return value
    if re.fullmatch(r"[0-9a-f]{8}", value):
        value = value + _BASE_UUID_SUFFIX
    if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", value):
        raise FrameError(f"{text!r} is not a Bluetooth UUID; write e.g. '181d' or '0000181d{_BASE_UUID_SUFFIX}'")
    if value.startswith("0000") and value.endswith(_BASE_UUID_SUFFIX):
        return value[4:8]
    return value


def parse_hex(text: str, what: str) -> bytes:
    """Hex as people and gateways write it: optional 0x, any case, spaces or colons between bytes."""
    cleaned = re.sub(r"[\s:_-]", "", text.strip()).lower().removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise FrameError(f"{what} is not hexadecimal") from None


@dataclass(frozen=True, slots=True)
class Frame:
    """What one advertisement (or one MQTT/btsnoop record of it) carried, untouched.

    `time` is when the receiver heard it, Unix seconds UTC: the receiver's clock, not the scale's,
    because the scale's clock is often unset (reference §1.4).
    """

    time: float
    mac: str
    address_type: AddressType = "unknown"
    rssi: int | None = None
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    name: str | None = None

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.time, tz=UTC)

    def to_json(self) -> dict[str, Any]:
        """The wire shape of `POST /api/v1/ble/frames` (docs/api.md, "The gateway's endpoint")."""
        return {
            "time": datetime.fromtimestamp(self.time, tz=UTC).isoformat().replace("+00:00", "Z"),
            "mac": self.mac,
            "address_type": self.address_type,
            "rssi": self.rssi,
            "service_data": {uuid: data.hex() for uuid, data in self.service_data.items()},
            "manufacturer_data": {f"{company:04x}": data.hex() for company, data in self.manufacturer_data.items()},
            "name": self.name,
        }


def frame_from_json(item: Any) -> Frame:
    """The inverse of `Frame.to_json`, strict: raises FrameError naming the bad field."""
    if not isinstance(item, dict):
        raise FrameError("a frame must be a JSON object")
    unknown = set(item) - {"time", "mac", "address_type", "rssi", "service_data", "manufacturer_data", "name"}
    if unknown:
        raise FrameError(f"unknown frame fields {sorted(unknown)}")
    time_text = item.get("time")
    if not isinstance(time_text, str):
        raise FrameError("time must be an ISO 8601 string with a zone, e.g. '2025-04-10T02:03:25.5Z'")
    try:
        moment = datetime.fromisoformat(time_text.replace("Z", "+00:00"))
    except ValueError:
        raise FrameError(f"time {time_text!r} is not ISO 8601") from None
    if moment.tzinfo is None:
        raise FrameError(f"time {time_text!r} has no zone; end it with 'Z' or '+00:00'")
    if not 0 <= moment.timestamp() < LATEST_TIME:
        raise FrameError(f"time {time_text!r} is outside 1970-2099; is the receiver's clock set?")
    mac = item.get("mac")
    if not isinstance(mac, str):
        raise FrameError("mac must be a string like 'C8:47:8C:C0:95:89'")
    address_type = item.get("address_type", "unknown")
    if address_type not in ("public", "random", "unknown"):
        raise FrameError("address_type must be 'public', 'random' or 'unknown'")
    rssi = item.get("rssi")
    if rssi is not None and (not isinstance(rssi, int) or isinstance(rssi, bool) or not -128 <= rssi <= 127):
        raise FrameError("rssi must be an integer from -128 to 127, or null")
    name = item.get("name")
    if name is not None and (not isinstance(name, str) or len(name) > 248):
        raise FrameError("name must be a string of at most 248 characters, or null")
    return Frame(
        time=moment.timestamp(),
        mac=normalise_mac(mac),
        address_type=address_type,
        rssi=rssi,
        service_data={normalise_uuid(key): _payload(value, f"service_data[{key!r}]")
                      for key, value in _table(item, "service_data").items()},
        manufacturer_data={_company(key): _payload(value, f"manufacturer_data[{key!r}]")
                           for key, value in _table(item, "manufacturer_data").items()},
        name=name,
    )


def _table(item: dict[str, Any], key: str) -> dict[str, Any]:
    value = item.get(key) or {}
    if not isinstance(value, dict):
        raise FrameError(f"{key} must be an object of hex strings")
    return value


def _payload(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise FrameError(f"{what} must be a hex string")
    data = parse_hex(value, what)
    if len(data) > 255:  # an extended advertisement holds at most 255 bytes of data in total
        raise FrameError(f"{what} is {len(data)} bytes; an advertisement carries at most 255")
    return data


def _company(key: str) -> int:
    text = key.strip().lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]{1,4}", text):
        raise FrameError(f"manufacturer_data key {key!r} is not a 16-bit company id in hex, e.g. '0157'")
    return int(text, 16)
