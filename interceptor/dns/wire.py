"""DNS wire format helpers for the hot path: parse a query's header and question, walk a reply's records.

Why not dnslib here: every query passes through this code, and a full `DNSRecord.parse` costs more than
the rest of the answer path together (the reference measured dnslib's own server at 2.8k qps). These
helpers touch only the bytes the responder needs (RFC 1035 §4.1) and never follow compression
pointers: the question of a query or reply cannot legally be compressed (there is nothing before it to
point to), and skipping a name in place needs only its first pointer. So a compression loop cannot
stall anything. Every function raises `WireError` on malformed input and nothing else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

HEADER = struct.Struct("!HHHHHH")
RR_FIXED = struct.Struct("!HHIH")  # type, class, ttl, rdlength
TYPE_CLASS = struct.Struct("!HH")
UINT32 = struct.Struct("!I")

TYPE_A = 1
TYPE_SOA = 6
TYPE_HINFO = 13
TYPE_AAAA = 28
TYPE_OPT = 41
TYPE_ANY = 255
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
EXTENDED_RCODE_BADVERS = 16

FLAG_QR = 0x8000
FLAG_AA = 0x0400
FLAG_TC = 0x0200
FLAG_RD = 0x0100
FLAG_RA = 0x0080
FLAG_AD = 0x0020
FLAG_CD = 0x0010
OPCODE_MASK = 0x7800

EDNS_DO = 0x8000
# The payload size we advertise and ask upstreams for: the DNS Flag Day 2020 value, which avoids IP
# fragmentation; dnsmasq's edns-packet-max default is the same (reference §2.1). It is also the most
# we ever send over UDP, whatever buffer a client advertises: a larger answer would make the responder
# an amplifier for anyone who can forge a local address (issue 11: 12.8 kB for a 43-byte query).
EDNS_PAYLOAD = 1232
CLASSIC_UDP_LIMIT = 512
MAX_NAME_LENGTH = 255
LOGGED_NAME_LENGTH = 100  # characters of a query name kept in a log line


class WireError(ValueError):
    """Malformed DNS message; `rcode` is what to answer (None: drop the packet without a reply)."""

    def __init__(self, message: str, rcode: int | None = RCODE_FORMERR) -> None:
        super().__init__(message)
        self.rcode = rcode


@dataclass(slots=True, frozen=True)
class Query:
    """What the responder needs from a client query; `qname` is the lower-cased wire-format name."""

    txid: int
    flags: int
    qname: bytes
    qtype: int
    qclass: int
    question: bytes  # the question section exactly as sent (original case), for echoing back
    label_offsets: tuple[int, ...]  # where each label starts in `qname`, for suffix matching
    edns: bool
    edns_version: int
    do: bool
    udp_size: int

    @property
    def udp_limit(self) -> int:
        """Largest UDP reply we send this client: what it accepts (RFC 6891 §6.2.5: below 512 is
        treated as 512), never more than our own EDNS_PAYLOAD."""
        if not self.edns:
            return CLASSIC_UDP_LIMIT
        return min(max(self.udp_size, CLASSIC_UDP_LIMIT), EDNS_PAYLOAD)

    @property
    def variant(self) -> int:
        """The query bits an upstream answer depends on, for the cache key: EDNS, DO, CD, AD."""
        return (self.edns << 0) | (self.do << 1) | (bool(self.flags & FLAG_CD) << 2) | (bool(self.flags & FLAG_AD) << 3)


def _walk_name(data: bytes, offset: int, labels: list[int] | None) -> int:
    """Offset just after the name at `offset`; collects label starts into `labels` when given.

    A compression pointer ends a name in place and is not followed; it is allowed only when `labels`
    is None (skipping a record owner), never in a question.
    """
    end = len(data)
    position = offset
    while True:
        if position >= end:
            raise WireError("name runs past the end of the message")
        length = data[position]
        if length == 0:
            return position + 1
        if length & 0xC0:
            if length & 0xC0 != 0xC0 or labels is not None:
                raise WireError("compressed or extended label where it is not allowed")
            if position + 2 > end:
                raise WireError("pointer runs past the end of the message")
            return position + 2
        if labels is not None:
            labels.append(position - offset)
        position += 1 + length
        if position - offset > MAX_NAME_LENGTH:
            raise WireError("name longer than 255 bytes")


def read_name(data: bytes, offset: int) -> tuple[int, list[int]]:
    """End offset of an uncompressed name starting at `offset`, and where its labels start."""
    labels: list[int] = []
    return _walk_name(data, offset, labels), labels


def skip_name(data: bytes, offset: int) -> int:
    """Offset just after a possibly compressed name, without following its pointer."""
    return _walk_name(data, offset, None)


def parse_query(data: bytes) -> Query:
    """Header, question and EDNS of a client query.

    Raises WireError with rcode None for what must not be answered at all (too short to carry an id,
    or a response rather than a query: answering those could make two servers talk to each other
    forever), FORMERR for malformed queries and NOTIMP for opcodes other than QUERY.
    """
    if len(data) < 12:
        raise WireError("shorter than a DNS header", rcode=None)
    txid, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    if flags & FLAG_QR:
        raise WireError("a response, not a query", rcode=None)
    if flags & OPCODE_MASK:
        raise WireError("opcode other than QUERY", rcode=RCODE_NOTIMP)
    if qdcount != 1:
        raise WireError(f"{qdcount} questions instead of 1")
    name_end, labels = read_name(data, 12)
    if name_end + 4 > len(data):
        raise WireError("question runs past the end of the message")
    qtype, qclass = TYPE_CLASS.unpack_from(data, name_end)
    question_end = name_end + 4
    edns = False
    version = 0
    do = False
    udp_size = CLASSIC_UDP_LIMIT
    position = question_end
    if ancount or nscount or arcount:
        for index in range(ancount + nscount + arcount):
            owner = position
            position = skip_name(data, position)
            if position + 10 > len(data):
                raise WireError("record runs past the end of the message")
            rtype, rclass, ttl, rdlength = RR_FIXED.unpack_from(data, position)
            position += 10 + rdlength
            if position > len(data):
                raise WireError("record data runs past the end of the message")
            if rtype == TYPE_OPT:
                if edns or index < ancount + nscount or data[owner] != 0:
                    raise WireError("misplaced or repeated OPT record")
                edns = True
                udp_size = rclass
                version = (ttl >> 16) & 0xFF
                do = bool(ttl & EDNS_DO)
    if position != len(data):
        raise WireError("bytes after the last record")
    return Query(
        txid=txid,
        flags=flags,
        qname=bytes(data[12:name_end]).lower(),
        qtype=qtype,
        qclass=qclass,
        question=bytes(data[12:question_end]),
        label_offsets=tuple(labels),
        edns=edns,
        edns_version=version,
        do=do,
        udp_size=udp_size,
    )


def name_text(qname: bytes, limit: int = LOGGED_NAME_LENGTH) -> str:
    """Presentation form of a wire-format name for logs ('.' for the root), at most `limit` characters.

    Bytes that are not printable ASCII, and dots or backslashes inside a label, are written as
    `\\DDD` (RFC 1035 §5.1), so a hostile name cannot forge or break log lines; a name longer than
    `limit` (escaping can make 255 bytes into 1,000 characters) is cut and ends with '...'.
    """
    parts: list[str] = []
    position = 0
    while position < len(qname) and qname[position]:
        length = qname[position]
        label = qname[position + 1 : position + 1 + length]
        parts.append("".join(chr(b) if 0x21 <= b <= 0x7E and b not in (0x2E, 0x5C) else f"\\{b:03d}" for b in label))
        position += 1 + length
    text = ".".join(parts) + "." if parts else "."
    return text if len(text) <= limit else text[: limit - 3] + "..."


def name_wire(text: str) -> bytes:
    """Lower-cased wire form of a dotted name (already validated by the settings)."""
    labels = [label for label in text.lower().rstrip(".").split(".") if label]
    return b"".join(bytes([len(label)]) + label.encode("ascii") for label in labels) + b"\x00"


def opt_record(do: bool, extended_rcode: int = 0) -> bytes:
    """Our OPT pseudo-record: root owner, our payload size, DO echoed, no options (RFC 6891 §6.1.2)."""
    ttl = ((extended_rcode >> 4) << 24) | (EDNS_DO if do else 0)
    return b"\x00" + RR_FIXED.pack(TYPE_OPT, EDNS_PAYLOAD, ttl, 0)


def build_reply(
    query: Query,
    rcode: int,
    *,
    answers: bytes = b"",
    answer_count: int = 0,
    authoritative: bool = False,
) -> bytes:
    """A locally made reply: the question echoed as asked, RD and CD copied, RA set, never AD.

    The AD bit is deliberately not copied (dnslib's `reply()` echoes the query's flags, so `dig`
    sees AD on answers nobody validated: reference §1.1).
    """
    flags = FLAG_QR | FLAG_RA | (query.flags & (FLAG_RD | FLAG_CD)) | (rcode & 0xF)
    if authoritative:
        flags |= FLAG_AA
    extended = rcode if rcode > 0xF else 0
    opt = opt_record(query.do, extended) if query.edns else b""
    header = HEADER.pack(query.txid, flags, 1, answer_count, 0, 1 if opt else 0)
    return header + query.question + answers + opt


def header_only_reply(data: bytes, rcode: int) -> bytes:
    """A reply with no question, for queries too malformed to echo (FORMERR, NOTIMP)."""
    txid, flags = struct.unpack_from("!HH", data)
    reply_flags = FLAG_QR | (flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | rcode
    return HEADER.pack(txid, reply_flags, 0, 0, 0, 0)


def address_record(rtype: int, ttl: int, address: bytes) -> bytes:
    """An answer RR whose owner is a pointer to the question name at offset 12."""
    return b"\xc0\x0c" + RR_FIXED.pack(rtype, CLASS_IN, ttl, len(address)) + address


def hinfo_record(qclass: int, ttl: int) -> bytes:
    """The one record RFC 8482 §4.2 answers an ANY query with: HINFO, CPU "RFC8482", OS empty,
    owned by the question name (a pointer to offset 12)."""
    rdata = b"\x07RFC8482\x00"
    return b"\xc0\x0c" + RR_FIXED.pack(TYPE_HINFO, qclass, ttl, len(rdata)) + rdata


def truncated(reply: bytes, query: Query) -> bytes:
    """What a client gets when `reply` does not fit its UDP size: same rcode and flags with TC set,
    the question, no records (RFC 2181 §9), and an OPT if the client sent one, so it retries over TCP."""
    flags = struct.unpack_from("!H", reply, 2)[0] | FLAG_TC
    opt = opt_record(query.do) if query.edns else b""
    return HEADER.pack(query.txid, flags, 1, 0, 0, 1 if opt else 0) + query.question + opt


@dataclass(slots=True, frozen=True)
class ReplyInfo:
    """What the cache and the forwarder need from an upstream reply."""

    rcode: int
    truncated: bool
    answer_count: int
    ttl_offsets: tuple[int, ...]  # offset of each record's TTL field, OPT excluded
    ttls: tuple[int, ...]
    negative_ttl: int | None  # min(SOA TTL, SOA MINIMUM) from the authority section (RFC 2308 §5)


def inspect_reply(data: bytes) -> ReplyInfo:
    """Walk every record of a reply once; raises WireError if any record runs off the end."""
    if len(data) < 12:
        raise WireError("shorter than a DNS header", rcode=None)
    _, flags, qdcount, ancount, nscount, arcount = HEADER.unpack_from(data)
    position = 12
    for _ in range(qdcount):
        position = skip_name(data, position) + 4
    if position > len(data):
        raise WireError("question runs past the end of the message")
    offsets: list[int] = []
    ttls: list[int] = []
    negative: int | None = None
    for index in range(ancount + nscount + arcount):
        position = skip_name(data, position)
        if position + 10 > len(data):
            raise WireError("record runs past the end of the message")
        rtype, _, ttl, rdlength = RR_FIXED.unpack_from(data, position)
        rdata_end = position + 10 + rdlength
        if rdata_end > len(data):
            raise WireError("record data runs past the end of the message")
        if rtype != TYPE_OPT:
            offsets.append(position + 4)
            ttls.append(ttl & 0x7FFFFFFF)  # RFC 2181 §8: a TTL with the top bit set means zero
            if rtype == TYPE_SOA and ancount <= index < ancount + nscount and rdlength >= 22:
                minimum = UINT32.unpack_from(data, rdata_end - 4)[0]
                negative = min(ttls[-1], minimum & 0x7FFFFFFF)
        position = rdata_end
    return ReplyInfo(
        rcode=flags & 0xF,
        truncated=bool(flags & FLAG_TC),
        answer_count=ancount,
        ttl_offsets=tuple(offsets),
        ttls=tuple(ttls),
        negative_ttl=negative,
    )


def question_matches(reply: bytes, upstream_query: bytes, question_end: int) -> bool:
    """Same txid, QR set, one question, and the very same question bytes (case included) as we sent.

    Comparing the case too keeps the protection of randomised case (DNS 0x20) if a client uses it.
    """
    return (
        len(reply) >= question_end
        and reply[:2] == upstream_query[:2]
        and bool(reply[2] & 0x80)
        and reply[4:6] == b"\x00\x01"
        and reply[12:question_end] == upstream_query[12:question_end]
    )
