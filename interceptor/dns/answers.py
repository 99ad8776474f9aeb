"""What the responder told each client about the intercepted names: the first thing to look at when
"the scale stopped syncing" (did the scale ask us at all? what did it get?).

Sans-I/O and bounded: the resolver calls `record` with the reply it is about to send (a few hundred
bytes, kept as they are), and the household page decodes the answers only when someone looks. Names
under withings.net and withings.com that are not intercepted are recorded too, with the upstream's
answer: a scale asking for a host we do not intercept talks to the real cloud, and `doctor` says so. At most
`MAX_ENTRIES` (client, name, type) triples are kept; the least recently asked goes first, so a
guest's phone cannot push the scale out by asking often (it refreshes its own entry instead).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

from interceptor.dns.wire import name_text

MAX_ENTRIES = 256


# Wire-format suffixes of the vendor's domains (reference withings-protocol.md §3: hostnames).
WATCHED_SUFFIXES = (b"\x08withings\x03net\x00", b"\x08withings\x03com\x00")


def watched(qname: bytes) -> bool:
    """A name of the vendor's domains (`qname` lower-cased wire format)."""
    return qname.endswith(WATCHED_SUFFIXES)


@dataclass
class _Asked:
    count: int
    first: float
    last: float
    reply: bytes
    intercepted: bool


@dataclass(frozen=True)
class Answered:
    """One client's questions about one intercepted name, as the health page shows them."""

    client: str
    name: str
    qtype: str
    count: int
    first_seen: float  # wall-clock seconds
    last_seen: float
    rcode: str
    addresses: tuple[str, ...]  # empty: answered without an address (NODATA), or refused
    intercepted: bool = True  # False: forwarded, the client was given the real cloud's answer

    def as_json(self) -> dict[str, object]:
        return {"client": self.client, "name": self.name, "type": self.qtype, "count": self.count,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "rcode": self.rcode,
                "addresses": list(self.addresses), "intercepted": self.intercepted}


class InterceptLog:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._asked: OrderedDict[tuple[str, bytes, int], _Asked] = OrderedDict()
        self.changes = 0  # grows with every record: a reader saves only after a change

    def record(self, client_ip: str, qname: bytes, qtype: int, reply: bytes, now: float,
               intercepted: bool = True) -> None:
        """`qname` in wire format; `now` on the resolver's clock (monotonic), made wall-clock by `snapshot`."""
        key = (client_ip, qname, qtype)
        self.changes += 1
        entry = self._asked.get(key)
        if entry is None:
            if len(self._asked) >= self.max_entries:
                self._asked.popitem(last=False)
            self._asked[key] = _Asked(1, now, now, reply, intercepted)
            return
        entry.count += 1
        entry.last = now
        entry.reply = reply
        entry.intercepted = intercepted
        self._asked.move_to_end(key)

    def snapshot(self, now: float, wall_now: float) -> list[Answered]:
        """Newest first; `now` on the resolver's clock and `wall_now` the same instant in Unix time."""
        shift = wall_now - now
        found = []
        for (client, name, qtype), entry in reversed(self._asked.items()):
            rcode, addresses = _decode(entry.reply)
            found.append(Answered(client, name_text(name).rstrip(".") or ".", str(QTYPE.get(qtype, qtype)), entry.count,
                                  entry.first + shift, entry.last + shift, rcode, addresses, entry.intercepted))
        return found


def _decode(reply: bytes) -> tuple[str, tuple[str, ...]]:
    try:
        record = DNSRecord.parse(reply)
    except Exception:  # dnslib raises several types; a reply we built ourselves should never fail
        return "unreadable", ()
    return (str(RCODE.get(record.header.rcode, record.header.rcode)),
            tuple(str(answer.rdata) for answer in record.rr if answer.rtype in (QTYPE.A, QTYPE.AAAA)))
