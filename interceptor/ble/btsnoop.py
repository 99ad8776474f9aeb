"""btsnoop files (Android's `btsnoop_hci.log`, btmon `-w`) → HCI events → frames.

Format: ble-scales.md §5.1. Datalinks 1001 (bare HCI), 1002 (H4, Android) and 2001 (BlueZ monitor)
are read; the records are streamed, so a capture of any size replays in constant memory.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator
from typing import BinaryIO

from interceptor.ble.frames import Frame
from interceptor.ble.hci import HciError, HciReader

MAGIC = b"btsnoop\x00"
DATALINK_H1 = 1001
DATALINK_H4 = 1002
DATALINK_MONITOR = 2001
DATALINKS = (DATALINK_H1, DATALINK_H4, DATALINK_MONITOR)
# µs between 0000-01-01 (nominal) and the Unix epoch (AOSP kBtSnoopEpochDelta).
EPOCH_DELTA_US = 0x00DCDDB30F2F8000
H4_EVENT = 0x04
MONITOR_EVENT = 3
FLAG_COMMAND_OR_EVENT = 0x02
FLAG_RECEIVED = 0x01
MAX_RECORD = 65_536 + 8  # larger than any HCI packet: a bigger length means a corrupt file

log = logging.getLogger(__name__)

_HEADER = struct.Struct(">8sII")
_RECORD = struct.Struct(">IIIIq")


class BtsnoopError(ValueError):
    """Not a btsnoop file, an unsupported datalink, or a corrupt record; says which record."""


def events(stream: BinaryIO) -> Iterator[tuple[float, bytes]]:
    """(Unix time, HCI event without the H4 byte) for every HCI event record."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size or header[:8] != MAGIC:
        raise BtsnoopError("not a btsnoop file (it does not start with 'btsnoop\\0')")
    _, version, datalink = _HEADER.unpack(header)
    if version != 1:
        raise BtsnoopError(f"btsnoop version {version} is not supported (only 1)")
    if datalink not in DATALINKS:
        raise BtsnoopError(f"btsnoop datalink {datalink} is not supported (1001, 1002 and 2001 are)")
    number = 0
    while True:
        record = stream.read(_RECORD.size)
        if not record:
            return
        number += 1
        if len(record) < _RECORD.size:
            raise BtsnoopError(f"record {number}: header cut short (the capture ends mid-record)")
        _, included, flags, _, timestamp = _RECORD.unpack(record)
        if included > MAX_RECORD:
            raise BtsnoopError(f"record {number}: length {included} is impossible for HCI; the file is corrupt")
        packet = stream.read(included)
        if len(packet) < included:
            raise BtsnoopError(f"record {number}: data cut short (the capture ends mid-record)")
        time = (timestamp - EPOCH_DELTA_US) / 1e6
        if datalink == DATALINK_H4:
            if packet[:1] == bytes([H4_EVENT]):
                yield time, packet[1:]
        elif datalink == DATALINK_H1:
            if flags & (FLAG_COMMAND_OR_EVENT | FLAG_RECEIVED) == FLAG_COMMAND_OR_EVENT | FLAG_RECEIVED:
                yield time, packet
        elif flags & 0xFFFF == MONITOR_EVENT:
            yield time, packet


def frames(stream: BinaryIO) -> Iterator[Frame]:
    """Every advertisement in the capture, in order. A malformed event stops nothing: it is
    logged with its time and bytes so it can be reproduced, and the replay goes on."""
    reader = HciReader()
    for time, event in events(stream):
        try:
            found = reader.frames(event, time)
        except HciError as error:
            log.warning("btsnoop: skipping the HCI event at %.6f: %s (event %s)", time, error, event.hex())
            continue
        yield from found
