"""The web page's TCP listener, with the limits aiohttp does not have: connections per client address
and overall, and a deadline for a client to finish sending its request head.

aiohttp closes idle kept-alive connections, and the app bounds how long a page may take, but a client
that sends a request one byte a minute would hold its connection forever (slowloris). Here a timer
starts with the first byte of each request and stops when the app starts handling it
(`Limits.handling`, called by the access middleware); a connection whose timer fires is closed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


class Limits:
    """Shared by the site (which counts connections) and the app (which says when handling began)."""

    def __init__(self, *, max_connections: int, per_client: int, request_timeout_s: float) -> None:
        self.max_connections = max_connections
        self.per_client = per_client
        self.request_timeout_s = request_timeout_s
        self.per_address: Counter[str] = Counter()
        self.open: dict[Any, _Guarded] = {}  # transport → its guard
        self.refused = 0

    def handling(self, transport: Any) -> None:
        guarded = self.open.get(transport)
        if guarded is not None:
            guarded.stop_deadline()


class _Guarded(asyncio.Protocol):
    def __init__(self, inner: asyncio.Protocol, limits: Limits) -> None:
        self._inner = inner
        self._limits = limits
        self._transport: Any = None
        self._address: str | None = None
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._limits
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else "unknown"
        if len(limits.open) >= limits.max_connections or limits.per_address[address] >= limits.per_client:
            limits.refused += 1
            if limits.refused % 100 == 1:  # a flood is logged, not every connection of it
                log.warning("web: refused a connection from %s (too many open; %d refused so far)", address,
                            limits.refused)
            transport.close()
            return
        self._transport, self._address = transport, address
        limits.per_address[address] += 1
        limits.open[transport] = self
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        if self._deadline is None:
            self._deadline = asyncio.get_running_loop().call_later(self._limits.request_timeout_s, self._expire)
        self._inner.data_received(data)

    def stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        log.info("web: closed a connection from %s that took over %g s to send its request", self._address,
                 self._limits.request_timeout_s)
        if self._transport is not None:
            self._transport.close()

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._transport is None:
            return
        self.stop_deadline()
        limits = self._limits
        limits.open.pop(self._transport, None)
        if self._address is not None:
            limits.per_address[self._address] -= 1
            if limits.per_address[self._address] <= 0:
                del limits.per_address[self._address]
        self._transport = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through `_Guarded`; it replaces `start` only to wrap the protocol
    factory, like `capture.record.RecordingSite`."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: Limits) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._limits = limits

    async def start(self) -> None:
        self._runner._reg_site(self)
        factory = self._runner.server
        assert factory is not None
        limits = self._limits
        self._server = await asyncio.get_running_loop().create_server(
            lambda: _Guarded(factory(), limits), self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
