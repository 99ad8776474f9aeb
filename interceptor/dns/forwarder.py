"""Asking the upstream resolvers: UDP from a fresh random port with a random id, TCP when truncated.

Every reply is checked against what was sent (source address and port, by the connected socket;
id and question, here) and anything else is dropped while the real answer is still awaited, so an
off-path spoofer has to guess a 16-bit id and a random port at once (dnslib checks neither:
CVE-2022-22846, reference §1.2). A fresh, connected socket per query gives the random port and also
surfaces ICMP "port unreachable" as an immediate error, so a dead upstream fails over at once
instead of after a timeout.

Identical queries that arrive while one is already on its way to an upstream share it: a burst of
clients asking the same name costs one upstream query.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import struct

from interceptor.dns.cache import CacheKey
from interceptor.dns.upstreams import Upstream, UpstreamPool
from interceptor.dns.wire import FLAG_TC, RCODE_REFUSED, RCODE_SERVFAIL, question_matches

log = logging.getLogger(__name__)

MAX_PASSES = 2  # over all upstreams, so instant failures (ICMP) cannot spin until the deadline
_LENGTH = struct.Struct("!H")


class Forwarder:
    def __init__(self, pool: UpstreamPool, attempt_timeout: float, query_timeout: float) -> None:
        self.pool = pool
        self.attempt_timeout = attempt_timeout
        self.query_timeout = query_timeout
        self._pending: dict[CacheKey, asyncio.Future[bytes | None]] = {}

    async def resolve(self, key: CacheKey, message: bytes, question_end: int) -> bytes | None:
        """The upstream reply to `message` (its first two bytes are replaced), None if none came in time.

        The first query for a key asks the upstreams in its own task; later identical ones wait on a
        future it fills, which costs no extra task on the common path of a single asker.
        """
        shared = self._pending.get(key)
        if shared is not None:
            return await asyncio.shield(shared)
        shared = asyncio.get_running_loop().create_future()
        self._pending[key] = shared
        try:
            reply = await self._ask_upstreams(message, question_end)
        except asyncio.CancelledError:
            shared.cancel()
            raise
        except BaseException:
            shared.set_result(None)  # the others answer SERVFAIL; this caller sees the error
            raise
        finally:
            del self._pending[key]
        shared.set_result(reply)
        return reply

    def close(self) -> None:
        """Wake anyone still waiting on a shared query (their askers are being cancelled)."""
        for shared in self._pending.values():
            shared.cancel()

    async def _ask_upstreams(self, message: bytes, question_end: int) -> bytes | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.query_timeout
        fallback: bytes | None = None
        answered: set[int] = set()  # upstreams that replied SERVFAIL or REFUSED are not asked again
        for _ in range(MAX_PASSES):
            for upstream in self.pool.order(loop.time()):
                if id(upstream) in answered:
                    continue
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return fallback
                try:
                    reply = await self._ask(upstream, message, question_end, min(self.attempt_timeout, remaining))
                    if reply[2] & (FLAG_TC >> 8):
                        reply = await self._ask_tcp(upstream, message, question_end, deadline - loop.time())
                except (TimeoutError, OSError, asyncio.IncompleteReadError) as error:
                    log.debug("upstream %s failed: %r", upstream, error)
                    self.pool.failed(upstream, loop.time())
                    continue
                if reply[3] & 0xF in (RCODE_SERVFAIL, RCODE_REFUSED):
                    # Another upstream may do better; keep this reply in case none does.
                    fallback = reply
                    answered.add(id(upstream))
                    if reply[3] & 0xF == RCODE_REFUSED:  # refusing everyone is a broken upstream;
                        self.pool.failed(upstream, loop.time())  # SERVFAIL may be one broken name
                    continue
                self.pool.succeeded(upstream)
                return reply
        return fallback

    async def _ask(self, upstream: Upstream, message: bytes, question_end: int, timeout: float) -> bytes:
        loop = asyncio.get_running_loop()
        query = secrets.token_bytes(2) + message[2:]
        with socket.socket(upstream.family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.connect((upstream.host, upstream.port))
            async with asyncio.timeout(timeout):
                await loop.sock_sendall(sock, query)
                while True:
                    # A connected UDP socket only receives datagrams from the upstream's address and
                    # port (the kernel drops the rest), so only the id and question remain to check.
                    # `sock_recv`, not `sock_recvfrom`: uvloop, which `interceptor serve` runs on,
                    # does not implement the latter.
                    reply = await loop.sock_recv(sock, 65535)
                    if question_matches(reply, query, question_end):
                        return reply
                    log.debug("dropped a reply that does not match the query sent to %s", upstream)

    async def _ask_tcp(self, upstream: Upstream, message: bytes, question_end: int, timeout: float) -> bytes:
        query = secrets.token_bytes(2) + message[2:]
        async with asyncio.timeout(max(timeout, 0.0)):
            reader, writer = await asyncio.open_connection(upstream.host, upstream.port)
            try:
                writer.write(_LENGTH.pack(len(query)) + query)
                await writer.drain()
                while True:
                    (length,) = _LENGTH.unpack(await reader.readexactly(2))
                    reply = await reader.readexactly(length)
                    if question_matches(reply, query, question_end):
                        return reply
            finally:
                writer.close()
