"""HCI LE advertising reports (legacy 0x02 and extended 0x0D) and AD structures → `Frame`s.

Sans-I/O, for btsnoop replay (and any raw-HCI source): offsets from ble-vectors.md §3 and
ble-scales.md §5.2. Reports inside one event are read one after another, as BlueZ's btmon does.
Extended reports may arrive in fragments; they are joined per (address, SID).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from interceptor.ble.frames import AddressType, Frame, normalise_uuid

EVENT_LE_META = 0x3E
SUBEVENT_ADVERTISING_REPORT = 0x02
SUBEVENT_EXTENDED_ADVERTISING_REPORT = 0x0D

AD_NAME_SHORT = 0x08
AD_NAME_COMPLETE = 0x09
AD_SERVICE_DATA_16 = 0x16
AD_SERVICE_DATA_32 = 0x20
AD_SERVICE_DATA_128 = 0x21
AD_MANUFACTURER = 0xFF

_DATA_INCOMPLETE = 1
_DATA_TRUNCATED = 2
MAX_FRAGMENTED = 64  # extended reports being joined at once; bounds memory on a hostile capture
MAX_EXTENDED_DATA = 1650  # Core spec: at most 1650 bytes of extended advertising data


class HciError(ValueError):
    """An event whose lengths do not add up; the message says where."""


def _address_type(code: int) -> AddressType:
    # 0 public, 1 random, 2/3 the same resolved from an RPA; 0xFF anonymous.
    return "public" if code in (0, 2) else "random" if code in (1, 3) else "unknown"


def _mac(raw: bytes) -> str:
    return ":".join(f"{byte:02X}" for byte in reversed(raw))


@dataclass(slots=True)
class AdvertisingData:
    service_data: dict[str, bytes] = field(default_factory=dict)
    manufacturer_data: dict[int, bytes] = field(default_factory=dict)
    name: str | None = None


def parse_ad(data: bytes) -> AdvertisingData:
    """`[len][type][value]` structures; a zero length ends the data (padding), a length that
    overruns it is an error."""
    result = AdvertisingData()
    position = 0
    while position < len(data):
        length = data[position]
        if length == 0:
            break
        if position + 1 + length > len(data):
            raise HciError(f"AD structure at byte {position} says {length} bytes, {len(data) - position - 1} remain")
        kind = data[position + 1]
        value = data[position + 2:position + 1 + length]
        position += 1 + length
        if kind == AD_SERVICE_DATA_16 and len(value) >= 2:
            result.service_data[f"{value[1]:02x}{value[0]:02x}"] = value[2:]
        elif kind == AD_SERVICE_DATA_32 and len(value) >= 4:
            result.service_data[normalise_uuid(value[3::-1].hex())] = value[4:]
        elif kind == AD_SERVICE_DATA_128 and len(value) >= 16:
            text = value[15::-1].hex()
            result.service_data[normalise_uuid(f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}")] = (
                value[16:])
        elif kind == AD_MANUFACTURER and len(value) >= 2:
            result.manufacturer_data[int.from_bytes(value[:2], "little")] = value[2:]
        elif kind in (AD_NAME_SHORT, AD_NAME_COMPLETE):
            result.name = value.decode("utf-8", errors="replace")
    return result


def _frame(time: float, mac: str, address_type: AddressType, rssi: int | None, data: bytes) -> Frame:
    ad = parse_ad(data)
    return Frame(time=time, mac=mac, address_type=address_type, rssi=rssi, service_data=ad.service_data,
                 manufacturer_data=ad.manufacturer_data, name=ad.name)


@dataclass
class HciReader:
    """Turns HCI events into frames; keeps the fragments of extended reports between events."""

    _fragments: dict[tuple[str, int], bytearray] = field(default_factory=dict)
    truncated: int = 0  # extended reports the controller said it could not deliver whole

    def frames(self, event: bytes, time: float) -> list[Frame]:
        """Frames in one HCI event (without the H4 type byte); [] for any other event."""
        if len(event) < 3 or event[0] != EVENT_LE_META:
            return []
        if event[1] != len(event) - 2:
            raise HciError(f"HCI event says {event[1]} parameter bytes, has {len(event) - 2}")
        subevent = event[2]
        if subevent == SUBEVENT_ADVERTISING_REPORT:
            return self._legacy(event[3:], time)
        if subevent == SUBEVENT_EXTENDED_ADVERTISING_REPORT:
            return self._extended(event[3:], time)
        return []

    @staticmethod
    def _legacy(body: bytes, time: float) -> list[Frame]:
        if not body:
            raise HciError("advertising report without a report count")
        frames = []
        position = 1
        for index in range(body[0]):
            if position + 9 > len(body):
                raise HciError(f"advertising report {index} is cut short")
            address_type, address, length = body[position + 1], body[position + 2:position + 8], body[position + 8]
            end = position + 9 + length
            if end + 1 > len(body):
                raise HciError(f"advertising report {index} says {length} data bytes; the event ends first")
            rssi = struct.unpack_from("b", body, end)[0]
            frames.append(_frame(time, _mac(address), _address_type(address_type), rssi, body[position + 9:end]))
            position = end + 1
        return frames

    def _extended(self, body: bytes, time: float) -> list[Frame]:
        if not body:
            raise HciError("extended advertising report without a report count")
        frames = []
        position = 1
        for index in range(body[0]):
            if position + 24 > len(body):
                raise HciError(f"extended advertising report {index} is cut short")
            event_type, address_type = struct.unpack_from("<HB", body, position)
            address = body[position + 3:position + 9]
            sid = body[position + 11]
            rssi = struct.unpack_from("b", body, position + 13)[0]
            length = body[position + 23]
            end = position + 24 + length
            if end > len(body):
                raise HciError(f"extended advertising report {index} says {length} data bytes; the event ends first")
            data = body[position + 24:end]
            position = end
            mac = _mac(address)
            status = (event_type >> 5) & 0x3
            key = (mac, sid)
            if status == _DATA_INCOMPLETE:
                self._gather(key, data)
                continue
            if key in self._fragments:
                data = bytes(self._fragments.pop(key)) + data
            if status == _DATA_TRUNCATED:
                self.truncated += 1
                continue
            frames.append(_frame(time, mac, _address_type(address_type), None if rssi == 127 else rssi, data))
        return frames

    def _gather(self, key: tuple[str, int], data: bytes) -> None:
        if key not in self._fragments and len(self._fragments) >= MAX_FRAGMENTED:
            self._fragments.pop(next(iter(self._fragments)))
            self.truncated += 1
        buffer = self._fragments.setdefault(key, bytearray())
        if len(buffer) + len(data) > MAX_EXTENDED_DATA:
            del self._fragments[key]
            self.truncated += 1
            return
        buffer += data
