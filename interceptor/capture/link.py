"""From a captured frame to a TCP segment: link layer, IPv4 or IPv6, TCP header.

A router's capture (`tcpdump -i eth0`), a capture on every interface (`-i any`: Linux cooked SLL or
SLL2), a raw-IP tunnel capture and a BSD/macOS loopback capture all carry the scale's traffic; dpkt
(see `files.py` for why dpkt) parses each of these headers. What is not TCP over IP is skipped, and a
frame too mangled to parse raises `FrameError`, which callers count and report without stopping.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

import dpkt
from dpkt import ethernet, ip, ip6, sll, sll2, tcp

Address = tuple[str, int]

# Link types, from the tcpdump.org LINKTYPE list.
LINKTYPE_NULL = 0  # BSD loopback: 4-byte address family in host order
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALIASES = (12, 14)  # DLT_RAW as some BSDs numbered it
LINKTYPE_LOOP = 108  # OpenBSD loopback: family in network order
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED_LINKTYPES = frozenset({
    LINKTYPE_NULL, LINKTYPE_ETHERNET, LINKTYPE_RAW, *LINKTYPE_RAW_ALIASES, LINKTYPE_LOOP,
    LINKTYPE_LINUX_SLL, LINKTYPE_IPV4, LINKTYPE_IPV6, LINKTYPE_LINUX_SLL2,
})

_ERRORS = (dpkt.Error, struct.error, ValueError, IndexError, KeyError, TypeError)
_IPV6_FRAGMENT = 44  # next-header number of the IPv6 fragment header


def endpoint(address: Address) -> str:
    """`host:port`, with IPv6 hosts in brackets."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class FrameError(ValueError):
    """A frame whose headers do not parse (cut short or corrupt)."""


@dataclass(frozen=True, slots=True)
class Segment:
    """A TCP segment. `length` is its length in sequence space; `payload` can be shorter when the
    capture's snapshot length cut the packet, and the missing bytes are a gap in the stream."""

    timestamp: float
    source: Address
    destination: Address
    seq: int
    ack: int
    flags: int
    payload: bytes
    length: int

    @property
    def syn(self) -> bool:
        return bool(self.flags & tcp.TH_SYN)

    @property
    def fin(self) -> bool:
        return bool(self.flags & tcp.TH_FIN)

    @property
    def rst(self) -> bool:
        return bool(self.flags & tcp.TH_RST)

    @property
    def has_ack(self) -> bool:
        return bool(self.flags & tcp.TH_ACK)


def _ip_packet(linktype: int, data: bytes) -> ip.IP | ip6.IP6 | None:
    """The IP packet inside a frame of this link type, or None if it carries something else."""
    if linktype == LINKTYPE_ETHERNET:
        inner = ethernet.Ethernet(data).data
    elif linktype == LINKTYPE_LINUX_SLL:
        inner = sll.SLL(data).data
    elif linktype == LINKTYPE_LINUX_SLL2:
        inner = sll2.SLL2(data).data
    elif linktype in (LINKTYPE_NULL, LINKTYPE_LOOP):
        inner = _by_version(data[4:])
    elif linktype in (LINKTYPE_RAW, *LINKTYPE_RAW_ALIASES, LINKTYPE_IPV4, LINKTYPE_IPV6):
        inner = _by_version(data)
    else:
        raise FrameError(f"link type {linktype} is not supported")
    return inner if isinstance(inner, ip.IP | ip6.IP6) else None


def _by_version(data: bytes) -> ip.IP | ip6.IP6 | None:
    if not data:
        return None
    version = data[0] >> 4
    if version == 4:
        return ip.IP(data)
    if version == 6:
        return ip6.IP6(data)
    return None


def decode(linktype: int, data: bytes, timestamp: float) -> Segment | None:
    """The TCP segment in a frame; None when the frame is not TCP over IP (or an IP fragment, which
    the scale never sends: its requests are a few hundred bytes)."""
    try:
        packet = _ip_packet(linktype, data)
        if packet is None:
            return None
        if isinstance(packet, ip.IP):
            if packet.p != ip.IP_PROTO_TCP or packet.mf or packet.offset:
                return None
            family, available = socket.AF_INET, packet.len - packet.hl * 4
        else:
            if packet.p != ip.IP_PROTO_TCP or _IPV6_FRAGMENT in packet.extension_hdrs:
                return None
            family, available = socket.AF_INET6, packet.plen - _extension_bytes(packet)
        segment = packet.data
        if not isinstance(segment, tcp.TCP):
            raise FrameError("TCP header cut short or corrupt")
        payload = bytes(segment.data)
        length = max(available - segment.off * 4, len(payload))
        return Segment(
            timestamp=timestamp,
            source=(socket.inet_ntop(family, packet.src), segment.sport),
            destination=(socket.inet_ntop(family, packet.dst), segment.dport),
            seq=segment.seq, ack=segment.ack, flags=segment.flags, payload=payload, length=length,
        )
    except FrameError:
        raise
    except _ERRORS as error:
        raise FrameError(f"headers do not parse ({type(error).__name__}: {error})") from None


def _extension_bytes(packet: ip6.IP6) -> int:
    """IPv6 extension headers sit between the fixed header and TCP and count in the payload length."""
    return sum(int(header.length) for header in packet.all_extension_headers)
