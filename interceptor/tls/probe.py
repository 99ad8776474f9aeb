"""The TLS probe's listener: accept, read the ClientHello, remember (client, server name), close.

A guest's phone or a scanner must not grow anything: connections are capped overall and per client
address by the `ConnectionTable` every listener uses (at a cap, a silent connection of whoever holds
the most makes room), each has `read_timeout_s` to send its hello and at most `MAX_READ` bytes are read, the record
keeps `MAX_ENTRIES` (client, name) pairs (the least recently seen goes first), and log lines are
limited to `LOG_PER_MINUTE` (a new pair is logged, a repeat is counted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from interceptor.limits import ConnectionTable
from interceptor.tls.hello import MAX_HELLO_BYTES, HelloError, parse_client_hello
from interceptor.tls.settings import TlsProbeSettings

log = logging.getLogger(__name__)

MAX_ENTRIES = 256
MAX_READ = MAX_HELLO_BYTES + 5 * 16  # the hello and the headers of the records it may be split over
LOG_PER_MINUTE = 10
# A fatal handshake_failure alert (RFC 8446 §6: type 21, level 2, description 40): the client stops at
# once instead of waiting on a silent socket.
HANDSHAKE_FAILURE = bytes([21, 3, 3, 0, 2, 2, 40])


@dataclass
class TlsAttempt:
    """One client's TLS connections for one server name, as `doctor` and the state file show them."""

    client: str
    server_name: str | None
    version: str
    count: int
    first_seen: float  # Unix time
    last_seen: float

    def as_json(self) -> dict[str, object]:
        return {"client": self.client, "server_name": self.server_name, "version": self.version,
                "count": self.count, "first_seen": self.first_seen, "last_seen": self.last_seen}


class TlsAttempts:
    """Bounded record of who tried TLS for what; also counts what was not a ClientHello."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str | None], TlsAttempt] = OrderedDict()
        self.not_tls = 0
        self.changes = 0  # grows with every record: the state writer saves only after a change
        self._log_window = 0.0
        self._logged = 0

    def record(self, client: str, server_name: str | None, version: str, now: float) -> None:
        key = (client, server_name)
        self.changes += 1
        seen = self._seen.get(key)
        if seen is not None:
            seen.count += 1
            seen.last_seen = now
            seen.version = version
            self._seen.move_to_end(key)
            return
        if len(self._seen) >= self.max_entries:
            self._seen.popitem(last=False)
        self._seen[key] = TlsAttempt(client, server_name, version, 1, now, now)
        if self._may_log(now):
            log.info("TLS probe: %s opened %s for %s; it does not upload over plain HTTP to this name", client,
                     version, server_name or "no server name")

    def _may_log(self, now: float) -> bool:
        if now - self._log_window >= 60:
            self._log_window, self._logged = now, 0
        self._logged += 1
        return self._logged <= LOG_PER_MINUTE

    def snapshot(self) -> list[TlsAttempt]:
        """Newest first."""
        return [TlsAttempt(**vars(item)) for item in reversed(self._seen.values())]


class _Probe(asyncio.Protocol):
    def __init__(self, server: TlsProbe) -> None:
        self.server = server
        self.transport: Any = None  # asyncio's or uvloop's TCP transport (uvloop's is no asyncio.Transport)
        self.client_ip = ""
        self.buffer = bytearray()
        self.deadline: asyncio.TimerHandle | None = None

    @property
    def busy(self) -> bool:
        """Sending its hello: only a silent connection is dropped to make room (`limits.Held`)."""
        return bool(self.buffer)

    def drop(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_made(self, transport: Any) -> None:
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if peer else "unknown"
        self.transport = transport
        if not self.server.connections.admit(self):
            self.server.refused += 1
            self.transport = None
            transport.abort()
            return
        self.deadline = asyncio.get_running_loop().call_later(self.server.settings.read_timeout_s, self._close)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        self.buffer += data[:MAX_READ - len(self.buffer)]
        try:
            hello = parse_client_hello(bytes(self.buffer))
        except HelloError as error:
            self.server.attempts.not_tls += 1
            log.debug("TLS probe: %s sent no ClientHello: %s", self.client_ip, error)
            self._close()
            return
        if hello is not None:
            self.server.attempts.record(self.client_ip, hello.server_name, hello.version, time.time())
            self.transport.write(HANDSHAKE_FAILURE)
            self._close()
        elif len(self.buffer) >= MAX_READ:
            self._close()

    def eof_received(self) -> bool:
        self._close()
        return False

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return
        self.transport = None
        if self.deadline is not None:
            self.deadline.cancel()
        self.server.connections.release(self)


class TlsProbe:
    def __init__(self, settings: TlsProbeSettings) -> None:
        self.settings = settings
        self.attempts = TlsAttempts()
        self.connections = ConnectionTable(settings.max_connections_per_client, settings.max_connections)
        self.refused = 0
        self.addresses: list[tuple[str, int]] = []
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listening on return; OSError when the address cannot be bound (the caller says why)."""
        host, port = self.settings.host_port
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Probe(self), host, port, reuse_address=True, backlog=64)
        self.addresses = [sock.getsockname()[:2] for sock in self._server.sockets]

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
