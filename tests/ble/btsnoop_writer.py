"""Builds HCI advertising reports and btsnoop files, for the tests only: the reader is checked
against the reference's bytes, and this writer is checked against the reader and those bytes."""

from __future__ import annotations

import struct
from collections.abc import Iterable

from interceptor.ble.btsnoop import DATALINK_H4, EPOCH_DELTA_US, MAGIC
from interceptor.ble.frames import Frame


def ad_bytes(frame: Frame) -> bytes:
    out = bytearray(b"\x02\x01\x06")
    for uuid, data in frame.service_data.items():
        body = bytes.fromhex(uuid)[::-1] + data
        out += bytes([len(body) + 1, 0x16]) + body
    for company, data in frame.manufacturer_data.items():
        body = company.to_bytes(2, "little") + data
        out += bytes([len(body) + 1, 0xFF]) + body
    if frame.name:
        name = frame.name.encode()
        out += bytes([len(name) + 1, 0x09]) + name
    return bytes(out)


def _address(frame: Frame) -> bytes:
    return bytes.fromhex(frame.mac.replace(":", ""))[::-1]


def legacy_report(frame: Frame) -> bytes:
    """LE Advertising Report event (no H4 byte), one ADV_IND report."""
    data = ad_bytes(frame)
    address_type = 1 if frame.address_type == "random" else 0
    body = bytes([0x02, 1, 0x00, address_type]) + _address(frame) + bytes([len(data)]) + data
    body += struct.pack("b", frame.rssi if frame.rssi is not None else -127)
    return bytes([0x3E, len(body)]) + body


def extended_reports(frame: Frame, fragment: int = 0) -> list[bytes]:
    """LE Extended Advertising Report events; with `fragment`, the data split into pieces of that
    size, all but the last marked "incomplete, more data to come"."""
    data = ad_bytes(frame)
    pieces = [data[i:i + fragment] for i in range(0, len(data), fragment)] if fragment else [data]
    events = []
    for index, piece in enumerate(pieces):
        event_type = 0x0013 | ((1 << 5) if index < len(pieces) - 1 else 0)
        body = struct.pack("<BHB", 1, event_type, 1 if frame.address_type == "random" else 0) + _address(frame)
        body += bytes([1, 0, 0xFF, 0x7F]) + struct.pack("b", frame.rssi if frame.rssi is not None else 127)
        body += bytes(9) + bytes([len(piece)]) + piece
        events.append(bytes([0x3E, len(body) + 1, 0x0D]) + body)
    return events


def btsnoop(records: Iterable[tuple[float, bytes]], datalink: int = DATALINK_H4) -> bytes:
    """A btsnoop file of HCI events: (Unix time, event without H4 byte)."""
    out = bytearray(MAGIC + struct.pack(">II", 1, datalink))
    for time, event in records:
        packet = bytes([0x04]) + event if datalink == DATALINK_H4 else event
        flags = 3  # H1/H4: received event; monitor: controller 0, opcode 3 = event
        stamp = round(time * 1e6) + EPOCH_DELTA_US
        out += struct.pack(">IIIIq", len(packet), len(packet), flags, 0, stamp) + packet
    return bytes(out)
