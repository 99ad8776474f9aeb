"""What the responder told each client about the intercepted names: the first thing to look at when
"the scale stopped syncing" (did the scale ask us at all? what did it get?).

Sans-I/O and bounded: the resolver calls `record` with the reply it is about to send (a few hundred
bytes, kept as they are), and the household page decodes the answers only when someone looks. At most
`MAX_ENTRIES` (client, name, type) triples are kept; the least recently asked goes first, so a
guest's phone cannot push the scale out by asking often (it refreshes its own entry instead).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dnslib import QTYPE, RCODE, DNSRecord

from interceptor.dns.wire import name_text

MAX_ENTRIES = 256


@dataclass
class _Asked:
    count: int
    first: float
    last: float
    reply: bytes


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

    def as_json(self) -> dict[str, object]:
        return {"client": self.client, "name": self.name, "type": self.qtype, "count": self.count,
                "first_seen": self.first_seen, "last_seen": self.last_seen, "rcode": self.rcode,
                "addresses": list(self.addresses)}


class InterceptLog:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._asked: OrderedDict[tuple[str, bytes, int], _Asked] = OrderedDict()

    def record(self, client_ip: str, qname: bytes, qtype: int, reply: bytes, now: float) -> None:
        """`qname` in wire format; `now` on the resolver's clock (monotonic), made wall-clock by `snapshot`."""
        key = (client_ip, qname, qtype)
        entry = self._asked.get(key)
        if entry is None:
            if len(self._asked) >= self.max_entries:
                self._asked.popitem(last=False)
            self._asked[key] = _Asked(1, now, now, reply)
            return
        entry.count += 1
        entry.last = now
        entry.reply = reply
        self._asked.move_to_end(key)

    def snapshot(self, now: float, wall_now: float) -> list[Answered]:
        """Newest first; `now` on the resolver's clock and `wall_now` the same instant in Unix time."""
        shift = wall_now - now
        found = []
        for (client, name, qtype), entry in reversed(self._asked.items()):
            rcode, addresses = _decode(entry.reply)
            found.append(Answered(client, name_text(name).rstrip(".") or ".", str(QTYPE.get(qtype, qtype)), entry.count,
                                  entry.first + shift, entry.last + shift, rcode, addresses))
        return found


def _decode(reply: bytes) -> tuple[str, tuple[str, ...]]:
    try:
        record = DNSRecord.parse(reply)
    except Exception:  # dnslib raises several types; a reply we built ourselves should never fail
        return "unreadable", ()
    return (str(RCODE.get(record.header.rcode, record.header.rcode)),
            tuple(str(answer.rdata) for answer in record.rr if answer.rtype in (QTYPE.A, QTYPE.AAAA)))
