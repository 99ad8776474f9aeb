"""Synthesised TCP/IP framing around real bytes, and pcap/pcapng writers.

`serve --capture` sees only the bytes of each connection (the kernel keeps the packets), and the
capture library is built from recorded bytes, not from packets; both need frames a packet tool
accepts: a handshake, data segments with correct sequence and acknowledgement numbers and checksums,
an ACK for each, and the close. dpkt builds the headers and computes the checksums.
"""

from __future__ import annotations

import socket
import struct
import sys
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Literal

from dpkt import ethernet, ip, ip6, pcap, pcapng, sll, sll2, tcp

from interceptor.capture.files import MAX_PACKET_BYTES
from interceptor.capture.link import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Address,
)

Link = Literal["ethernet", "sll", "sll2", "raw", "null"]
LINKTYPES: dict[Link, int] = {
    "ethernet": LINKTYPE_ETHERNET, "sll": LINKTYPE_LINUX_SLL, "sll2": LINKTYPE_LINUX_SLL2, "raw": LINKTYPE_RAW,
    "null": LINKTYPE_NULL,
}
TimedFrame = tuple[float, bytes]
# Locally administered addresses: recognisably synthetic in Wireshark.
CLIENT_MAC = bytes.fromhex("020000000001")
SERVER_MAC = bytes.fromhex("020000000002")
_SLL_TO_US, _SLL_OUTGOING = 0, 4
_MSS_OPTION = struct.pack(">BBH", 2, 4, 1460)
_AF_INET6_BSD = 30  # the loopback header's family value for IPv6 on macOS


def _isn(address: Address) -> int:
    """A fixed initial sequence number per endpoint, so generated files are byte-for-byte repeatable."""
    return zlib.crc32(f"{address[0]}|{address[1]}".encode())


@dataclass
class TcpSynthesiser:
    """The frames of one TCP connection as a capture point between client and server would see them."""

    client: Address
    server: Address
    link: Link = "ethernet"
    mss: int = 1460
    client_mac: bytes = CLIENT_MAC
    server_mac: bytes = SERVER_MAC
    _next: dict[Address, int] = field(init=False, default_factory=dict)  # next stream offset per sender
    _ip_id: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._next = {self.client: 0, self.server: 0}
        self._family = socket.AF_INET6 if ":" in self.client[0] else socket.AF_INET

    @property
    def linktype(self) -> int:
        return LINKTYPES[self.link]

    def _other(self, sender: Address) -> Address:
        return self.server if sender == self.client else self.client

    def frame(self, sender: Address, flags: int, *, offset: int | None = None, payload: bytes = b"") -> bytes:
        """One frame from `sender`; `offset` is in the sender's stream (default: its next byte).
        Sequence numbers count the SYN, so stream offset 0 is ISN + 1."""
        receiver = self._other(sender)
        position = self._next[sender] if offset is None else offset
        seq = _isn(sender) if flags & tcp.TH_SYN else (_isn(sender) + 1 + position) % (1 << 32)
        ack = (_isn(receiver) + 1 + self._next[receiver]) % (1 << 32) if flags & tcp.TH_ACK else 0
        segment = tcp.TCP(sport=sender[1], dport=receiver[1], seq=seq, ack=ack, flags=flags, win=65535,
                          data=payload)
        if flags & tcp.TH_SYN:
            segment.opts = _MSS_OPTION
            segment.off = 5 + len(_MSS_OPTION) // 4
        source, destination = socket.inet_pton(self._family, sender[0]), socket.inet_pton(self._family, receiver[0])
        packet: ip.IP | ip6.IP6
        if self._family == socket.AF_INET:
            self._ip_id = (self._ip_id + 1) & 0xFFFF
            packet = ip.IP(src=source, dst=destination, p=ip.IP_PROTO_TCP, ttl=64, id=self._ip_id, df=1,
                           data=segment)
            ethertype = ethernet.ETH_TYPE_IP
        else:
            packet = ip6.IP6(src=source, dst=destination, nxt=ip.IP_PROTO_TCP, hlim=64, data=segment)
            packet.plen = len(bytes(segment))
            packet.p = ip.IP_PROTO_TCP
            ethertype = ethernet.ETH_TYPE_IP6
        return self._link(sender, ethertype, bytes(packet))

    def _link(self, sender: Address, ethertype: int, packet: bytes) -> bytes:
        own, peer = (self.client_mac, self.server_mac) if sender == self.client else (self.server_mac, self.client_mac)
        if self.link == "ethernet":
            return bytes(ethernet.Ethernet(src=own, dst=peer, type=ethertype)) + packet
        # The cooked headers describe the capture at the server: what the client sent arrived "to us".
        direction = _SLL_TO_US if sender == self.client else _SLL_OUTGOING
        if self.link == "sll":
            return bytes(sll.SLL(type=direction, hrd=1, hlen=6, hdr=own + b"\0\0", ethtype=ethertype)) + packet
        if self.link == "sll2":
            return bytes(sll2.SLL2(ethtype=ethertype, intindex=1, hrd=1, type=direction, hlen=6,
                                   hdr=own + b"\0\0")) + packet
        if self.link == "null":
            family = socket.AF_INET if self._family == socket.AF_INET else _AF_INET6_BSD
            return struct.pack("<I", family) + packet
        return packet

    def sent(self, sender: Address) -> int:
        """How many stream bytes `sender` has sent so far (its next stream offset)."""
        return self._next[sender]

    def handshake(self, timestamp: float) -> list[TimedFrame]:
        return [
            (timestamp, self.frame(self.client, tcp.TH_SYN)),
            (timestamp + 1e-4, self.frame(self.server, tcp.TH_SYN | tcp.TH_ACK)),
            (timestamp + 2e-4, self.frame(self.client, tcp.TH_ACK)),
        ]

    def send(self, sender: Address, data: bytes, timestamp: float, *, segment_size: int | None = None,
             acknowledge: bool = True) -> list[TimedFrame]:
        """`data` as consecutive segments of at most `segment_size` (default the MSS) bytes, and the
        receiver's ACK of them (one per segment, as with delayed ACKs disabled)."""
        size = max(1, segment_size or self.mss)
        frames: list[TimedFrame] = []
        for index, start in enumerate(range(0, len(data), size)):
            chunk = data[start:start + size]
            frames.append((timestamp + index * 1e-5, self.frame(sender, tcp.TH_ACK | tcp.TH_PUSH, payload=chunk)))
            self._next[sender] += len(chunk)
            if acknowledge:
                frames.append((timestamp + index * 1e-5 + 5e-6, self.frame(self._other(sender), tcp.TH_ACK)))
        return frames

    def fin(self, sender: Address, timestamp: float) -> list[TimedFrame]:
        """`sender` closes its half of the connection."""
        frame = (timestamp, self.frame(sender, tcp.TH_FIN | tcp.TH_ACK))
        self._next[sender] += 1
        return [frame]

    def ack(self, sender: Address, timestamp: float) -> list[TimedFrame]:
        return [(timestamp, self.frame(sender, tcp.TH_ACK))]

    def close(self, timestamp: float, *, first: Address | None = None) -> list[TimedFrame]:
        """FIN from `first` (default the client), the peer's FIN-ACK, and the last ACK."""
        closer = first or self.client
        peer = self._other(closer)
        return self.fin(closer, timestamp) + self.fin(peer, timestamp + 1e-4) + self.ack(closer, timestamp + 2e-4)


class PcapngWriter:
    """Incremental pcapng output: one section, one interface of the given link type."""

    def __init__(self, stream: BinaryIO, linktype: int, application: str = "scale-interceptor") -> None:
        # dpkt's writer insists on blocks in the machine's byte order.
        little = sys.byteorder == "little"
        option = pcapng.PcapngOptionLE if little else pcapng.PcapngOption
        section = (pcapng.SectionHeaderBlockLE if little else pcapng.SectionHeaderBlock)(opts=[
            option(code=pcapng.PCAPNG_OPT_SHB_USERAPPL, data=application.encode()),
            option(code=pcapng.PCAPNG_OPT_ENDOFOPT),
        ])
        interface = (pcapng.InterfaceDescriptionBlockLE if little else pcapng.InterfaceDescriptionBlock)(
            snaplen=MAX_PACKET_BYTES, linktype=linktype)
        self._writer = pcapng.Writer(stream, shb=section, idb=interface)

    def write(self, frames: Iterable[TimedFrame]) -> None:
        for timestamp, data in frames:
            self._writer.writepkt_time(data, timestamp)


def write_capture(stream: BinaryIO, linktype: int, frames: Iterable[TimedFrame], *, pcapng_format: bool = True) -> None:
    """A whole capture file: pcapng (what `serve --capture` writes) or classic pcap (tcpdump's default)."""
    if pcapng_format:
        PcapngWriter(stream, linktype).write(frames)
        return
    writer = pcap.Writer(stream, snaplen=MAX_PACKET_BYTES, linktype=linktype)
    for timestamp, data in frames:
        writer.writepkt(data, timestamp)
