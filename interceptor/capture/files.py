"""Reading pcap and pcapng files as a stream of frames, one record at a time.

The block and header layouts come from dpkt (https://github.com/kbandla/dpkt, BSD licence), a
small pure-Python packet library with no dependencies that has read and written both formats for
over a decade; scapy would also parse them, but it is a much larger dependency, slow to import and
slow per packet, for the two dozen structures needed here. dpkt's own `Reader` classes are not used:
they trust every length they read (a pcapng block length under 8 makes them read the rest of the
file into memory; a truncated record comes back silently short), and keep only the first interface
of a pcapng file. So this module walks the records itself, checks each length before reading it,
and hands each record's bytes to dpkt's header classes. Memory is one record at a time, whatever the
file size, and every problem is a `CaptureError` naming the file and the byte offset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import dpkt
from dpkt import pcap, pcapng

# tcpdump's largest snapshot length; a record claiming more is corrupt, not a big packet.
MAX_PACKET_BYTES = 262_144
# A pcapng block holds one packet plus options; anything far beyond the largest packet is corrupt.
MAX_BLOCK_BYTES = 4 * MAX_PACKET_BYTES
PCAPNG_SHB = 0x0A0D0D0A
PCAPNG_SPB = 3  # simple packet block (dpkt defines the number but has no class for it)
PCAPNG_BOM = 0x1A2B3C4D

_PCAP_MAGICS = {
    pcap.TCPDUMP_MAGIC: (pcap.FileHdr, pcap.PktHdr, 1e-6),
    pcap.TCPDUMP_MAGIC_NANO: (pcap.FileHdr, pcap.PktHdr, 1e-9),
    pcap.PMUDPCT_MAGIC: (pcap.LEFileHdr, pcap.LEPktHdr, 1e-6),
    pcap.PMUDPCT_MAGIC_NANO: (pcap.LEFileHdr, pcap.LEPktHdr, 1e-9),
}
# What dpkt raises on malformed structures, beyond its own error class.
_DPKT_ERRORS = (dpkt.Error, struct.error, ValueError, IndexError, UnicodeDecodeError)


class CaptureError(Exception):
    """A capture file that cannot be read further; the message says which file, where, and why."""

    def __init__(self, name: str, offset: int, problem: str) -> None:
        super().__init__(f"{name}: {problem} at byte offset {offset}")
        self.name = name
        self.offset = offset
        self.problem = problem


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured packet: link-layer bytes, the link type that frames them, and where it came from."""

    index: int  # 1-based, as Wireshark numbers frames
    offset: int  # byte offset of the record in the file
    timestamp: float  # seconds since the epoch
    linktype: int
    data: bytes


class _Source:
    """Sequential reads that know their offset and refuse to come back short."""

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.stream = stream
        self.name = name
        self.offset = 0

    def read(self, size: int, what: str, *, eof_ok: bool = False) -> bytes | None:
        data = self.stream.read(size)
        if not data and eof_ok:
            return None
        if len(data) < size:
            raise CaptureError(self.name, self.offset,
                               f"truncated {what}: needs {size} bytes, the file has {len(data)} left")
        self.offset += size
        return data

    def fail(self, offset: int, problem: str) -> CaptureError:
        return CaptureError(self.name, offset, problem)


def read_frames(source: Path | BinaryIO, name: str | None = None) -> Iterator[Frame]:
    """Every frame of a pcap or pcapng file, in file order, read lazily."""
    if isinstance(source, Path):
        with source.open("rb") as stream:
            yield from read_frames(stream, name or str(source))
        return
    reader = _Source(source, name or getattr(source, "name", "<capture>"))
    head = reader.read(4, "file header")
    assert head is not None
    (magic,) = struct.unpack(">I", head)
    if magic == PCAPNG_SHB:
        yield from _pcapng(reader, head)
    elif magic in _PCAP_MAGICS:
        yield from _pcap(reader, head, magic)
    else:
        raise reader.fail(0, f"not a pcap or pcapng file (magic 0x{magic:08x})")


def _pcap(reader: _Source, head: bytes, magic: int) -> Iterator[Frame]:
    file_class, record_class, resolution = _PCAP_MAGICS[magic]
    rest = reader.read(file_class.__hdr_len__ - 4, "pcap file header")
    assert rest is not None
    header = file_class(head + rest)
    if header.v_major != pcap.PCAP_VERSION_MAJOR:
        raise reader.fail(4, f"unsupported pcap version {header.v_major}.{header.v_minor}")
    linktype = header.linktype & 0xFFFF  # the upper bits carry FCS information
    index = 0
    while True:
        offset = reader.offset
        raw = reader.read(record_class.__hdr_len__, "packet record header", eof_ok=True)
        if raw is None:
            return
        record = record_class(raw)
        if record.caplen > MAX_PACKET_BYTES:
            raise reader.fail(offset, f"packet record claims {record.caplen} bytes (more than {MAX_PACKET_BYTES})")
        data = reader.read(record.caplen, "packet data")
        assert data is not None
        index += 1
        yield Frame(index, offset, record.tv_sec + record.tv_usec * resolution, linktype, data)


@dataclass
class _Interface:
    linktype: int
    snaplen: int
    resolution: float
    offset_seconds: int


def _interface(block: pcapng.InterfaceDescriptionBlock, little: bool) -> _Interface:
    resolution, offset_seconds = 1e-6, 0
    for option in block.opts:
        if option.code == pcapng.PCAPNG_OPT_IF_TSRESOL and option.data:
            value = option.data[0]
            base = 2 if value & 0x80 else 10
            resolution = float(base) ** -(value & 0x7F)
        elif option.code == pcapng.PCAPNG_OPT_IF_TSOFFSET and len(option.data) >= 8:
            offset_seconds = struct.unpack("<q" if little else ">q", option.data[:8])[0]
    return _Interface(block.linktype, block.snaplen, resolution, offset_seconds)


def _pcapng(reader: _Source, head: bytes) -> Iterator[Frame]:
    """Sections, interfaces per section, and the three packet block kinds; other blocks are skipped."""
    little = True
    interfaces: list[_Interface] = []
    index = 0
    last_timestamp = 0.0
    pending = head  # the four bytes already read to sniff the format
    while True:
        offset = reader.offset - len(pending)
        more = reader.read(8 - len(pending), "block header", eof_ok=not pending)
        if more is None:
            return
        start = pending + more
        pending = b""
        block_type = struct.unpack(">I", start[:4])[0]
        if block_type == PCAPNG_SHB:
            bom = reader.read(4, "section header")
            assert bom is not None
            if struct.unpack("<I", bom)[0] == PCAPNG_BOM:
                little = True
            elif struct.unpack(">I", bom)[0] == PCAPNG_BOM:
                little = False
            else:
                raise reader.fail(offset + 8, "section header has no byte-order magic")
            start += bom
            interfaces = []
        block_type, length = struct.unpack("<II" if little else ">II", start[:8])
        if length < 12 or length % 4 or length > MAX_BLOCK_BYTES:
            raise reader.fail(offset, f"pcapng block of type {block_type} claims an impossible length {length}")
        body = reader.read(length - len(start), f"pcapng block of type {block_type}")
        assert body is not None
        block = start + body
        if block[-4:] != block[4:8]:
            raise reader.fail(offset, "pcapng block's two length fields differ")
        try:
            frame = _block(block, block_type, little, interfaces, last_timestamp)
        except _DPKT_ERRORS as error:
            raise reader.fail(offset, f"malformed pcapng block of type {block_type} ({error or type(error).__name__})"
                              ) from None
        except LookupError as error:
            raise reader.fail(offset, str(error.args[0])) from None
        if frame is not None:
            linktype, timestamp, data = frame
            last_timestamp = timestamp
            index += 1
            yield Frame(index, offset, timestamp, linktype, data)


def _block(
    block: bytes, block_type: int, little: bool, interfaces: list[_Interface], last_timestamp: float
) -> tuple[int, float, bytes] | None:
    """One block's contribution: a packet (link type, time, bytes), or None for anything else."""
    if block_type == PCAPNG_SHB:
        section = (pcapng.SectionHeaderBlockLE if little else pcapng.SectionHeaderBlock)(block)
        if section.v_major != pcapng.PCAPNG_VERSION_MAJOR:
            raise ValueError(f"unsupported pcapng version {section.v_major}.{section.v_minor}")
        return None
    if block_type == pcapng.PCAPNG_BT_IDB:
        description = (pcapng.InterfaceDescriptionBlockLE if little else pcapng.InterfaceDescriptionBlock)(block)
        interfaces.append(_interface(description, little))
        return None
    if block_type in (pcapng.PCAPNG_BT_EPB, pcapng.PCAPNG_BT_PB):
        if block_type == pcapng.PCAPNG_BT_EPB:
            packet = (pcapng.EnhancedPacketBlockLE if little else pcapng.EnhancedPacketBlock)(block)
        else:
            packet = (pcapng.PacketBlockLE if little else pcapng.PacketBlock)(block)
        if packet.caplen > len(block) - 32:
            raise ValueError(f"packet of {packet.caplen} bytes does not fit its block")
        interface = _lookup(interfaces, packet.iface_id)
        ticks = (packet.ts_high << 32) | packet.ts_low
        return interface.linktype, interface.offset_seconds + ticks * interface.resolution, packet.pkt_data
    if block_type == PCAPNG_SPB:
        interface = _lookup(interfaces, 0)
        (original,) = struct.unpack("<I" if little else ">I", block[8:12])
        size = min(original, len(block) - 16, interface.snaplen or MAX_PACKET_BYTES)
        return interface.linktype, last_timestamp, block[12:12 + size]
    return None


def _lookup(interfaces: list[_Interface], number: int) -> _Interface:
    if number >= len(interfaces):
        raise LookupError(f"packet names interface {number}, but the section describes {len(interfaces)}")
    return interfaces[number]
