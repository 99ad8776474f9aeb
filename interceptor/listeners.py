"""HTTP listeners that no client on the household network can hold, flood or fill the disk through.

Every aiohttp application the server exposes (the emulated Withings cloud with the BLE gateway's
endpoint, the web page) is served by `start_listener`, which puts a guard in front of aiohttp's own
protocol for each connection. The guard works on bytes, before aiohttp parses anything, so what it
refuses costs almost nothing and never reaches a handler, a log line or the request log:

* a connection with no request under way (just opened, or answered) is closed after
  `idle_timeout`; one whose request has started must have its reply started within
  `request_timeout` of the request's first byte, whatever it sends meanwhile (slowloris: headers or a
  body a byte at a time, half a request, `Expect: 100-continue` and nothing). An application whose
  handlers may take longer than a client may take to send (the web page makes pages from the
  journal, and answers one that takes too long with a 503 of its own) is served with a
  `handling_timeout` and calls `handling_began(request)` as its handling starts: from then on the
  reply must start within `handling_timeout` instead, and the connection counts as busy;
* one client address holds at most `max_connections_per_client` connections, everyone together
  `max_connections`; at a cap, the newcomer takes the place of an idle connection (or of a request
  stalled for `STALLED_AFTER`) of whoever holds the most, their oldest first (`limits.ConnectionTable`);
* each client address may make `rate_limit` requests a second, bursts of `rate_burst`
  (`limits.RateLimiter`). Requests are counted as they start, and pipelined ones by their request
  lines; beyond the rate the client gets `429 Too Many Requests` and the connection is closed;
* everything the guard does to a client is logged through the listener's `Notices`: a few lines per
  client and window, then one summary line. Each line names the setting that decided it as the
  config file writes it (`keys`: `[http] request_timeout` unless told otherwise).

A reply is recognised by its status line (`HTTP/1.x NNN`, 1xx excepted) at the start of a write.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

from aiohttp import web

from interceptor.limits import ConnectionTable, ListenerLimits, RateLimiter, limit_keys
from interceptor.notices import Notices

log = logging.getLogger(__name__)

NOTICES = web.AppKey("notices", Notices)
STALLED_AFTER = 2.0  # seconds: a request still arriving after this may make room at a connection cap
TOO_MANY_REQUESTS = (
    b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\nContent-Length: 18\r\nRetry-After: 1\r\n"
    b"Connection: close\r\n\r\ntoo many requests\n"
)
_REQUEST_LINE = b"HTTP/1."

HTTP_KEYS = limit_keys("http")

Tap = Callable[[asyncio.Protocol], asyncio.Protocol]


def http_notices() -> Notices:
    """The notice window of the HTTP side: what the guard and the handlers log about clients."""
    return Notices(logging.getLogger("interceptor.http"), time.monotonic(),
                   what="refused, rate-limited, timed-out or unexpected HTTP requests",
                   lines_per_window=20, lines_per_client=5)


class _Shared:
    """What every connection of one listener shares."""

    def __init__(self, limits: ListenerLimits, notices: Notices, loop: asyncio.AbstractEventLoop,
                 keys: Mapping[str, str], handling_timeout: float | None) -> None:
        self.limits = limits
        self.notices = notices
        self.loop = loop
        self.keys = keys
        self.handling_timeout = handling_timeout
        self.table = ConnectionTable(limits.max_connections_per_client, limits.max_connections)
        self.rate = RateLimiter(limits.rate_limit, limits.rate_burst)


class ForwardingTransport(asyncio.Transport):
    """A transport that does what the real one does; subclasses watch what is written. (uvloop's
    transports do not derive from asyncio.Transport but offer the same methods.)"""

    def __init__(self, real: asyncio.Transport) -> None:
        super().__init__()
        self._real = real

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._real.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(bytes(item) for item in list_of_data))

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._real.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._real.is_closing()

    def close(self) -> None:
        self._real.close()

    def abort(self) -> None:
        self._real.abort()

    def pause_reading(self) -> None:
        self._real.pause_reading()

    def resume_reading(self) -> None:
        self._real.resume_reading()

    def is_reading(self) -> bool:
        return self._real.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._real.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._real.get_write_buffer_limits()

    def can_write_eof(self) -> bool:
        return self._real.can_write_eof()

    def write_eof(self) -> None:
        self._real.write_eof()


class _GuardedTransport(ForwardingTransport):
    """Tells the guard when a reply starts; `handling_began` finds the guard through it."""

    def __init__(self, real: asyncio.Transport, guard: _Guard) -> None:
        super().__init__(real)
        self.guard = guard

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.guard.requesting and data[:7] == _REQUEST_LINE and data[9:10] != b"1":
            self.guard.replied()
        self._real.write(data)


class _Guard(asyncio.Protocol):
    """Stands between the event loop and aiohttp's protocol for one connection."""

    def __init__(self, inner: asyncio.Protocol, shared: _Shared) -> None:
        self._inner = inner
        self._shared = shared
        self._transport: asyncio.Transport | None = None  # None once closed by the guard
        self._admitted = False
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._started = 0.0
        self.client_ip = ""
        self.requesting = False  # a request has started and has no reply yet
        self._handling = False  # ... and the application said it is handling it (`handling_began`)

    # -- what limits.ConnectionTable needs -------------------------------------------------------

    @property
    def busy(self) -> bool:
        return self.requesting and (self._handling or self._shared.loop.time() - self._started < STALLED_AFTER)

    def drop(self) -> None:
        keys = self._shared.keys
        self._close(f"made room for a newer connection at {keys['max_connections_per_client']} or"
                    f" {keys['max_connections']}", abort=True)

    # -- from the event loop ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        shared = self._shared
        peer = transport.get_extra_info("peername")
        self.client_ip = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        real = cast(asyncio.Transport, transport)
        if not shared.table.admit(self):
            shared.notices.notice(
                time.monotonic(), self.client_ip, "closed a new HTTP connection from %s: every connection in the"
                " way of %s or %s is busy", self.client_ip, shared.keys["max_connections_per_client"],
                shared.keys["max_connections"])
            real.abort()
            return
        self._transport = real
        self._admitted = True
        self._deadline = shared.loop.time() + shared.limits.idle_timeout
        self._timer = shared.loop.call_at(self._deadline, self._check)
        self._inner.connection_made(_GuardedTransport(real, self))

    def data_received(self, data: bytes) -> None:
        if self._transport is None:
            return
        cost = data.count(_REQUEST_LINE)
        fresh = not self.requesting
        if fresh:
            self.requesting = True
            self._started = now = self._shared.loop.time()
            self._set_deadline(now + self._shared.limits.request_timeout)
            cost = cost or 1
        if cost and not self._shared.rate.allow(self.client_ip, self._shared.loop.time(), cost):
            self._too_many(reply=fresh)
            return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._transport is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._shared.table.release(self)
        self._transport = None
        if self._admitted:
            self._admitted = False
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    # -- the guard's own ---------------------------------------------------------------------------

    def replied(self) -> None:
        """A reply started: the next request may take its time to come, up to `idle_timeout`."""
        self.requesting = False
        self._handling = False
        self._deadline = self._shared.loop.time() + self._shared.limits.idle_timeout

    def handling(self) -> None:
        """The application began handling a request (also one that came pipelined behind the last)."""
        timeout = self._shared.handling_timeout
        if timeout is None or self._transport is None:
            return
        now = self._shared.loop.time()
        if not self.requesting:
            self.requesting = True
            self._started = now
        self._handling = True
        self._set_deadline(now + timeout)

    def _set_deadline(self, deadline: float) -> None:
        """The timer is moved only when the deadline comes sooner; a later one is checked when it fires."""
        self._deadline = deadline
        if self._timer is not None and self._timer.when() > deadline:
            self._timer.cancel()
            self._timer = self._shared.loop.call_at(deadline, self._check)

    def _check(self) -> None:
        self._timer = None
        if self._transport is None:
            return
        loop = self._shared.loop
        if loop.time() < self._deadline:
            self._timer = loop.call_at(self._deadline, self._check)
            return
        limits = self._shared.limits
        if self._handling:
            self._close(f"no reply within {self._shared.handling_timeout:g} s of its handling beginning", abort=True)
        elif self.requesting:
            self._close(f"no reply within {self._shared.keys['request_timeout']} {limits.request_timeout:g} s of"
                        " the request's first byte (sent too slowly, or incomplete)", abort=True)
        else:  # an idle connection is closed without a word: clients expect that of HTTP servers
            self._close("", abort=True, quiet=True)

    def _too_many(self, *, reply: bool) -> None:
        """Over the rate: 429 when the connection carries no other request (one reply at a time),
        and closed either way; the request never reaches aiohttp."""
        limits = self._shared.limits
        if reply and self._transport is not None:
            self._transport.write(TOO_MANY_REQUESTS)
        self._close(f"answered 429: more than {self._shared.keys['rate_limit']} {limits.rate_limit:g} requests a"
                    f" second (bursts of {limits.rate_burst})", abort=not reply)

    def _close(self, why: str, *, abort: bool, quiet: bool = False) -> None:
        transport = self._transport
        if transport is None:
            return
        self._transport = None
        if not quiet:
            self._shared.notices.notice(time.monotonic(), self.client_ip, "closed an HTTP connection from %s: %s",
                                        self.client_ip, why)
        self._shared.table.release(self)
        if abort:
            transport.abort()
        else:
            transport.close()  # sends what is written first; aiohttp hears of it in connection_lost


def handling_began(request: web.BaseRequest) -> None:
    """For an application served with a `handling_timeout`: call as a request's handling starts (first
    thing in a middleware). Without one, or outside a guarded listener, it does nothing."""
    transport = request.transport
    while isinstance(transport, ForwardingTransport):  # a tap's transport wraps the guard's
        if isinstance(transport, _GuardedTransport):
            transport.guard.handling()
            return
        transport = transport._real


class GuardedSite(web.TCPSite):
    """A TCPSite whose connections go through the guard (and through `tap`, e.g. a capture, inside
    it). It replaces `TCPSite.start` only to pass the wrapped protocol factory to `create_server`;
    everything else is aiohttp's. It also writes the notices' summary line once a window."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ListenerLimits, notices: Notices,
                 *, tap: Tap | None = None, keys: Mapping[str, str] = HTTP_KEYS,
                 handling_timeout: float | None = None) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self._limits = limits
        self._notices = notices
        self._tap = tap
        self._keys = keys
        self._handling_timeout = handling_timeout
        self._flush_timer: asyncio.TimerHandle | None = None

    async def start(self) -> None:
        self._runner._reg_site(self)
        factory = self._runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()
        shared = _Shared(self._limits, self._notices, loop, self._keys, self._handling_timeout)
        tap = self._tap

        def guarded() -> asyncio.Protocol:
            inner = cast(asyncio.Protocol, factory())
            return _Guard(tap(inner) if tap is not None else inner, shared)

        self._server = await loop.create_server(guarded, self._host, self._port, backlog=self._backlog,
                                                reuse_address=self._reuse_address)
        self._flush_timer = loop.call_later(self._notices.window, self._flush_notices)

    def _flush_notices(self) -> None:
        self._notices.flush(time.monotonic())
        self._flush_timer = asyncio.get_running_loop().call_later(self._notices.window, self._flush_notices)

    async def stop(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
            self._notices.flush(time.monotonic())
        await super().stop()


async def start_listener(app: web.Application, host: str, port: int, limits: ListenerLimits, *,
                         tap: Tap | None = None, keys: Mapping[str, str] = HTTP_KEYS,
                         handling_timeout: float | None = None, **runner_options: Any) -> web.AppRunner:
    """Serve `app` on host:port under `limits`: the one call a listener needs. The app's notices
    (`app[NOTICES]`, set before this if its handlers log about clients too) are used, else new ones.
    `keys`: what the log calls each limit (`limits.limit_keys`); `handling_timeout`: see the module's
    docstring. Raises OSError when the address cannot be bound; `await runner.cleanup()` stops it."""
    if NOTICES not in app:
        app[NOTICES] = http_notices()
    notices = app[NOTICES]
    runner = web.AppRunner(app, **runner_options)  # the guard times connections out, not aiohttp
    await runner.setup()
    try:
        await GuardedSite(runner, host, port, limits, notices, tap=tap, keys=keys,
                          handling_timeout=handling_timeout).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
