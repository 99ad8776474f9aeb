"""Frame streams for the end-to-end tests and the benchmark: whole weigh-ins as a scale sends them,
mixed into the other adverts a radio hears."""

from __future__ import annotations

import random

from interceptor.ble.frames import Frame
from tests.ble.vectors import by_id

S400_MAC = "8C:D0:B2:F6:BE:EF"
S400_TIME = 1744250605.0
MI2_MAC = "50:FB:19:1B:B5:DC"
MI1_MAC = "C8:47:8C:C0:95:89"


def _vector(vector_id: str) -> tuple[str, str, bytes]:
    vector = by_id("service_data", vector_id)
    return vector["mac"], vector["uuid"], bytes.fromhex(vector["data"])


def vector_frame(vector_id: str, at: float, rssi: int = -60) -> Frame:
    mac, uuid, data = _vector(vector_id)
    return Frame(time=at, mac=mac, address_type="public", rssi=rssi, service_data={uuid: data})


def s400_weigh_in(start: float = S400_TIME + 1) -> list[Frame]:
    """Packet A then B, each repeated for a second or so (vectors S400-XB-1/-2)."""
    return ([vector_frame("S400-XB-1", start + i * 0.25) for i in range(4)]
            + [vector_frame("S400-XB-2", start + 1 + i * 0.25) for i in range(4)])


def mi_scale_2_weigh_in(start: float) -> list[Frame]:
    """Settling, stabilized without impedance, the impedance frame three times, stepping off."""
    mac, uuid, _ = _vector("V2-XB-1")
    before_bia = bytes.fromhex("0224b20705040f020100008642")
    return ([vector_frame("V2-XB-2", start)]
            + [Frame(time=start + 1 + i * 0.5, mac=mac, service_data={uuid: before_bia}) for i in range(2)]
            + [vector_frame("V2-XB-1", start + 2 + i) for i in range(3)]
            + [vector_frame("V2-XB-3", start + 6)])


def mi_scale_weigh_in(start: float, weight_kg: float) -> list[Frame]:
    """A Mi Scale (V1) with an unset clock: settling, the stabilized frame five times, removed."""
    raw = round(weight_kg * 200)

    def frame(control: int, at: float, weight: int) -> Frame:
        data = bytes([control]) + weight.to_bytes(2, "little") + bytes.fromhex("b20701010a1a15")
        return Frame(time=at, mac=MI1_MAC, address_type="public", rssi=-70, service_data={"181d": data},
                     manufacturer_data={0x0157: bytes.fromhex(MI1_MAC.replace(":", ""))})

    return ([frame(0x02, start, raw - 150), frame(0x02, start + 0.5, raw - 20)]
            + [frame(0x22, start + 1 + i * 0.5, raw) for i in range(5)] + [frame(0xA2, start + 4, raw)])


def noise(rng: random.Random, at: float) -> Frame:
    """What most adverts are: phones (Apple 0x004C), trackers, a thermometer on 0xFE95 (product 0x055B)."""
    kind = rng.randrange(4)
    mac = ":".join(f"{rng.randrange(256):02X}" for _ in range(6))
    if kind == 0:
        return Frame(time=at, mac=mac, address_type="random", rssi=-80,
                     manufacturer_data={0x004C: rng.randbytes(rng.randrange(8, 24))})
    if kind == 1:
        return Frame(time=at, mac=mac, address_type="random", rssi=-90, service_data={"fd6f": rng.randbytes(20)})
    if kind == 2:
        return Frame(time=at, mac=mac, rssi=-75, service_data={"fe95": bytes.fromhex("5020aa01") + rng.randbytes(8)})
    return Frame(time=at, mac=mac, rssi=-85, manufacturer_data={0x0006: rng.randbytes(27)})


def interleave(weigh_ins: list[list[Frame]], noise_per_frame: int, seed: int = 7) -> list[Frame]:
    """The weigh-ins' frames in time order, each followed by `noise_per_frame` other adverts."""
    rng = random.Random(seed)
    frames = []
    for frame in sorted((frame for weigh_in in weigh_ins for frame in weigh_in), key=lambda item: item.time):
        frames.append(frame)
        frames += [noise(rng, frame.time + (i + 1) * 0.001) for i in range(noise_per_frame)]
    return frames
