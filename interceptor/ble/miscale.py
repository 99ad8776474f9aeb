"""Mi Smart Scale (service data 0x181D, 10 bytes) and Mi Body Composition Scale 2 (0x181B, 13
bytes): unencrypted, so decoding is pure byte slicing (layouts: ble-scales.md §1.1–1.3)."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from interceptor.ble.errors import NotThisDevice

KG_PER_LB = 0.45359237
KG_PER_JIN = 0.5
# ESPHome and bt-mqtt-gateway treat larger values as a failed measurement (reference §1.3).
MAX_IMPEDANCE_OHM = 3000

MODEL_V1 = "XMTZC01HM/XMTZC04HM"
MODEL_V2 = "XMTZC02HM/XMTZC05HM/NUN4049CN"

Unit = Literal["kg", "lb", "jin"]


@dataclass(frozen=True, slots=True)
class MiScaleSample:
    """One Mi Scale frame. `stabilized` is the raw flag: a frame can be stabilized *and* removed
    (the scale keeps advertising the last result after the person stepped off)."""

    version: Literal[1, 2]
    unit: Unit
    weight_raw: int
    weight_kg: float
    stabilized: bool
    removed: bool
    impedance_ohm: float | None
    scale_time: datetime | None  # the scale's RTC, local time without a zone; None when not a date
    object_mode: bool

    @property
    def model(self) -> str:
        return MODEL_V1 if self.version == 1 else MODEL_V2

    @property
    def final(self) -> bool:
        """Worth a weigh-in: settled, somebody still on the scale, and a weight."""
        return self.stabilized and not self.removed and self.weight_raw > 0

    @property
    def live(self) -> bool:
        """Somebody is on the scale now (settled or not)."""
        return not self.removed and self.weight_raw > 0

    @property
    def late(self) -> bool:
        """The settled result re-advertised after the person stepped off (`…02a6…`, `…02a4…`,
        V1 `a2…`): still a weigh-in when nothing earlier of it was heard (ble-scales.md §1.6)."""
        return self.stabilized and self.removed and self.weight_raw > 0


def _kilograms(raw: int, unit: Unit) -> float:
    if unit == "kg":
        return raw / 200
    return raw / 100 * (KG_PER_LB if unit == "lb" else KG_PER_JIN)


def _scale_time(year: int, month: int, day: int, hour: int, minute: int, second: int) -> datetime | None:
    try:
        return datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None


def decode_v1(data: bytes) -> MiScaleSample:
    """0x181D: control, weight u16 LE, year u16 LE, month, day, hour, minute, second."""
    if len(data) != 10:
        raise NotThisDevice(f"Mi Smart Scale service data is 10 bytes, got {len(data)}")
    control, weight_raw, year, month, day, hour, minute, second = struct.unpack("<BHHBBBBB", data)
    unit: Unit = "jin" if control & 0x10 else "lb" if control & 0x01 else "kg"
    return MiScaleSample(
        version=1, unit=unit, weight_raw=weight_raw, weight_kg=_kilograms(weight_raw, unit),
        stabilized=bool(control & 0x20), removed=bool(control & 0x80), impedance_ohm=None,
        scale_time=_scale_time(year, month, day, hour, minute, second), object_mode=bool(control & 0x40),
    )


def decode_v2(data: bytes) -> MiScaleSample:
    """0x181B: ctrl0, ctrl1, year u16 LE, month, day, hour, minute, second, impedance u16 LE, weight u16 LE.

    The impedance counts only when ctrl1 bit 1 says so and it is in range; a removed frame still
    carries the flag with impedance 0 (vector V2-XB-3)."""
    if len(data) != 13:
        raise NotThisDevice(f"Mi Body Composition Scale 2 service data is 13 bytes, got {len(data)}")
    ctrl0, ctrl1, year, month, day, hour, minute, second, impedance, weight_raw = struct.unpack("<BBHBBBBBHH", data)
    unit: Unit = "jin" if ctrl1 & 0x40 else "lb" if ctrl0 & 0x01 else "kg"
    has_impedance = bool(ctrl1 & 0x02) and 0 < impedance < MAX_IMPEDANCE_OHM
    return MiScaleSample(
        version=2, unit=unit, weight_raw=weight_raw, weight_kg=_kilograms(weight_raw, unit),
        stabilized=bool(ctrl1 & 0x20), removed=bool(ctrl1 & 0x80),
        impedance_ohm=float(impedance) if has_impedance else None,
        scale_time=_scale_time(year, month, day, hour, minute, second), object_mode=bool(ctrl0 & 0x04),
    )
