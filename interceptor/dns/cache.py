"""The answer cache: upstream replies kept as wire bytes and served with their TTLs counted down.

Why bytes and not records: a cache hit must cost about as little as an intercepted answer (the
issue's floor is 10,000 qps for both), so a hit copies a stored reply, rewrites the TTL fields at
offsets found once when it was stored, and lets the caller patch the id and question case. The
rewritten copy is remembered for the current second, so most hits do not even touch the TTLs.

Sans-I/O: every method takes the clock as an argument.
"""

from __future__ import annotations

import struct
from collections import OrderedDict
from dataclasses import dataclass

from interceptor.dns.wire import RCODE_NOERROR, RCODE_NXDOMAIN, ReplyInfo

CacheKey = tuple[bytes, int, int, int]  # lower-cased qname, qtype, qclass, Query.variant

# A reply can be up to 64 KiB over TCP; without a byte budget the entry cap alone would let a few
# thousand large answers take gigabytes.
BYTE_BUDGET = 32 * 1024 * 1024

_TTL = struct.Struct("!I")


@dataclass(slots=True)
class _Entry:
    template: bytes
    ttl_offsets: tuple[int, ...]
    ttls: tuple[int, ...]
    stored: float
    expires: float
    served_age: int
    served: bytes


class Cache:
    """LRU with an entry cap and a byte budget; positive TTLs clamped to [min_ttl, max_ttl],
    negative answers kept for their SOA's negative TTL (RFC 2308 §5) up to `negative_max_ttl`."""

    def __init__(self, size: int, min_ttl: int, max_ttl: int, negative_max_ttl: int) -> None:
        self.size = size
        self.min_ttl = min_ttl
        self.max_ttl = max_ttl
        self.negative_max_ttl = negative_max_ttl
        self._entries: OrderedDict[CacheKey, _Entry] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey, now: float) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if now >= entry.expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        age = int(now - entry.stored)
        if age != entry.served_age:
            reply = bytearray(entry.template)
            for offset, ttl in zip(entry.ttl_offsets, entry.ttls, strict=True):
                _TTL.pack_into(reply, offset, ttl - age if ttl > age else 0)
            entry.served = bytes(reply)
            entry.served_age = age
        return entry.served

    def lifetime(self, info: ReplyInfo) -> int:
        """Seconds a reply may be kept; 0 for what must not be cached (errors, truncated, no SOA)."""
        if info.truncated:
            return 0
        if info.rcode == RCODE_NOERROR and info.answer_count:
            lowest = min(info.ttls[: info.answer_count])
            return max(self.min_ttl, min(lowest, self.max_ttl))
        if info.rcode in (RCODE_NOERROR, RCODE_NXDOMAIN) and info.negative_ttl is not None:
            return min(info.negative_ttl, self.negative_max_ttl)
        return 0

    def put(self, key: CacheKey, reply: bytes, info: ReplyInfo, now: float) -> None:
        if self.size == 0 or len(reply) > BYTE_BUDGET // 64:
            return
        lifetime = self.lifetime(info)
        if lifetime <= 0:
            return
        ttls = tuple(min(ttl, self.max_ttl) for ttl in info.ttls)
        template = bytearray(reply)
        for offset, ttl in zip(info.ttl_offsets, ttls, strict=True):
            _TTL.pack_into(template, offset, ttl)
        if key in self._entries:
            self._drop(key)
        frozen = bytes(template)
        self._entries[key] = _Entry(frozen, info.ttl_offsets, ttls, now, now + lifetime, 0, frozen)
        self._bytes += len(frozen)
        while len(self._entries) > self.size or self._bytes > BYTE_BUDGET:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: CacheKey) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.template)
