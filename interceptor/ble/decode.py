"""From a heard frame to the scale samples in it: the one entry point every input uses.

Only three service-data UUIDs can hold a scale frame; everything else (phones, headphones, other
vendors' beacons — most of what a gateway hears) is dismissed by one dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from interceptor.ble import mibeacon, miscale
from interceptor.ble.errors import DecodeError
from interceptor.ble.frames import SCALE_UUIDS, Frame, normalise_mac, normalise_uuid
from interceptor.ble.mibeacon import Idle, S200Packet, S400Packet
from interceptor.ble.miscale import MiScaleSample

UUID_MI_SCALE = "181d"
UUID_MI_SCALE_2 = "181b"
UUID_MIBEACON = "fe95"

Sample = MiScaleSample | S400Packet | S200Packet | Idle
KeyLookup = Callable[[str], bytes | None]


def decode_service_data(uuid: str, data: bytes, mac: str, key: bytes | None = None) -> list[Sample]:
    """Samples in one service-data payload; raises DecodeError (or a subclass) with the reason."""
    if uuid == UUID_MI_SCALE:
        return [miscale.decode_v1(data)]
    if uuid == UUID_MI_SCALE_2:
        return [miscale.decode_v2(data)]
    if uuid == UUID_MIBEACON:
        return list(mibeacon.decode(data, mac, key))
    return []


@dataclass(slots=True)
class Decoded:
    """Everything one frame said: its samples, and the reasons any part of it was refused."""

    frame: Frame
    samples: list[Sample] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)


def decode_frame(frame: Frame, keys: KeyLookup) -> Decoded | None:
    """None when the frame carries no scale UUID at all (the common case)."""
    result = None
    for uuid, data in frame.service_data.items():
        if uuid not in SCALE_UUIDS:
            continue
        if result is None:
            result = Decoded(frame)
        try:
            result.samples.extend(decode_service_data(uuid, data, frame.mac, keys(frame.mac)))
        except DecodeError as error:
            result.errors.append(error)
    return result


def describe(sample: Sample) -> dict[str, Any]:
    """JSON for `ble decode` and `gateway --listen-only`: the decoded fields, named as in DESIGN."""
    if isinstance(sample, MiScaleSample):
        return {
            "type": f"mi-scale-v{sample.version}", "model": sample.model, "unit": sample.unit,
            "weight_kg": sample.weight_kg, "impedance_ohm": sample.impedance_ohm,
            "stabilized": sample.stabilized, "removed": sample.removed, "final": sample.final,
            "object_mode": sample.object_mode,
            "scale_time": sample.scale_time.isoformat() if sample.scale_time else None,
        }
    if isinstance(sample, S400Packet):
        return {
            "type": "s400", "model": sample.model, "counter": sample.counter, "profile_id": sample.profile_id,
            "weight_kg": sample.weight_kg, "heart_rate_bpm": sample.heart_rate_bpm,
            "impedance_ohm": sample.impedance_ohm, "socks": sample.socks, "empty": sample.empty,
            "timestamp": sample.timestamp, "packed": f"0x{sample.packed:08x}",
        }
    if isinstance(sample, S200Packet):
        return {"type": "s200", "model": sample.model, "counter": sample.counter, "profile_id": sample.profile_id,
                "weight_kg": sample.weight_kg, "timestamp": sample.timestamp}
    return {"type": "idle", "model": sample.model, "product_id": f"0x{sample.product_id:04x}"}


def decode_hex(uuid: str, data: bytes, mac: str | None, key: bytes | None) -> list[dict[str, Any]]:
    """`interceptor ble decode`: like `decode_service_data`, for a person at a prompt."""
    normalised = normalise_uuid(uuid)
    if normalised not in SCALE_UUIDS:
        raise DecodeError(f"UUID {uuid} is not a scale service; use 181d, 181b or fe95")
    if normalised == UUID_MIBEACON and mac is None:
        raise DecodeError("0xFE95 frames need --mac (the scale's address is part of the frame's nonce)")
    return [describe(sample) for sample in
            decode_service_data(normalised, data, normalise_mac(mac) if mac else "00:00:00:00:00:00", key)]
