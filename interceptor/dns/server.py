"""The asyncio shell around the resolver: UDP and TCP listeners, IPv4 and IPv6, no threads.

UDP is read straight from non-blocking sockets with `loop.add_reader`, draining up to a batch of
datagrams per wake-up: asyncio's own datagram transport does one `recvfrom` per event-loop turn,
which is where most of the time of a pure-Python responder goes under load. Answers known at once
(intercepted, cached, refused) are sent before the next datagram is read; forwarded ones become
tasks. TCP is served by `tcp.TcpService`, with its timeouts and connection caps.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Coroutine
from typing import Any

from interceptor.dns.forwarder import Forwarder
from interceptor.dns.interfaces import LocalAddresses
from interceptor.dns.resolver import Forward, Resolver
from interceptor.dns.settings import DnsSettings
from interceptor.dns.tcp import TcpService
from interceptor.dns.upstreams import UpstreamPool
from interceptor.notices import NOTICE_WINDOW
from interceptor.startup import ListenError

log = logging.getLogger(__name__)

UDP_BATCH = 64
UDP_RECEIVE_BUFFER = 1 << 20  # absorbs bursts while an answer is being computed
MAX_DATAGRAM = 65535
TCP_BACKLOG = 128


class DnsStartError(Exception):
    """No listener could be opened at all (IPv6 alone, on a machine without it); the message says what to do.
    An address that cannot be bound raises `interceptor.startup.ListenError`, worded by the command."""


def _socket(family: socket.AddressFamily, kind: socket.SocketKind) -> socket.socket:
    sock = socket.socket(family, kind)
    if family == socket.AF_INET6:
        # Separate IPv4 and IPv6 listeners on the same port, as the default `0.0.0.0:53` + `[::]:53` needs.
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.setblocking(False)
    return sock


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket on the same address and port (port 0: one free for both)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    attempts = 20 if port == 0 else 1
    for attempt in range(attempts):
        udp = _socket(family, socket.SOCK_DGRAM)
        tcp = _socket(family, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(TCP_BACKLOG)
        except OSError as error:
            udp.close()
            tcp.close()
            if error.errno == errno.EADDRINUSE and attempt + 1 < attempts:
                continue
            raise
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
        return udp, tcp
    raise AssertionError("unreachable: the last attempt raises")


class _UdpListener:
    def __init__(self, server: DnsServer, sock: socket.socket, host: str) -> None:
        self.server = server
        self.sock = sock
        self.host = host

    def readable(self) -> None:
        sock = self.sock
        handle = self.server.resolver.handle
        clock = self.server.loop.time
        for _ in range(UDP_BATCH):
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. an ICMP error queued on the socket
                log.debug("UDP receive error on %s: %s", self.host, error)
                continue
            result = handle(data, address[0], self.host, clock(), False)
            if result is None:
                continue
            if type(result) is bytes:
                self.send(result, address)
            else:
                assert isinstance(result, Forward)
                self.server.spawn(self._forward(result, address))

    def send(self, reply: bytes, address: Any) -> None:
        try:
            self.sock.sendto(reply, address)
        except OSError as error:  # a full send buffer drops the reply, as the network could have
            log.debug("UDP send to %s failed: %s", address, error)

    async def _forward(self, forward: Forward, address: Any) -> None:
        reply = await self.server.ask_upstreams(forward)
        self.send(self.server.resolver.finish(forward, reply, self.server.loop.time()), address)


class DnsServer:
    """Running listeners; `addresses` holds the bound (host, port) of each, UDP and TCP alike."""

    def __init__(self, settings: DnsSettings, *, query_log: bool) -> None:
        self.settings = settings
        self.loop = asyncio.get_running_loop()
        upstreams = settings.upstream_addresses
        self.local_addresses = LocalAddresses([host for host, _ in upstreams if ":" not in host])
        self.resolver = Resolver(
            settings, self.local_addresses.ipv4_for, log_queries=query_log or settings.query_log, now=self.loop.time()
        )
        self.forwarder = Forwarder(UpstreamPool(upstreams), settings.upstream_timeout, settings.query_timeout)
        self.tcp = TcpService(self)
        self.addresses: list[tuple[str, int]] = []
        self._udp: list[_UdpListener] = []
        self._tcp_servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._notice_timer = self.loop.call_later(NOTICE_WINDOW, self._flush_notices)

    def _flush_notices(self) -> None:
        """Every notice window: the summary of refused and malformed queries that were not logged."""
        self.resolver.notices.flush(self.loop.time())
        self._notice_timer = self.loop.call_later(NOTICE_WINDOW, self._flush_notices)

    async def _listen(self) -> None:
        for host, port in self.settings.listen_addresses:
            try:
                udp, tcp = _bind_pair(host, port)
            except OSError as error:
                if host == "::" and error.errno in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                    log.warning("IPv6 is not available on this machine; not listening on [::]:%d", port)
                    continue
                raise ListenError("DNS", host, port, error) from None
            listener = _UdpListener(self, udp, host)
            self.loop.add_reader(udp.fileno(), listener.readable)
            self._udp.append(listener)
            self._tcp_servers.append(await asyncio.start_server(self.tcp.serve, sock=tcp))
            self.addresses.append((host, udp.getsockname()[1]))
        if not self.addresses:
            raise DnsStartError("no DNS listener could be opened; set [dns] listen to an address of this machine")

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Run a forwarded answer; `close` cancels whatever is still running."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def ask_upstreams(self, forward: Forward) -> bytes | None:
        """The upstream reply, or None; a bug in forwarding must cost one SERVFAIL, not the server."""
        try:
            return await self.forwarder.resolve(forward.key, forward.message, forward.question_end)
        except Exception:
            self.resolver.notices.notice(
                self.loop.time(), forward.client_ip, "forwarding a query from %s failed unexpectedly",
                forward.client_ip, level=logging.ERROR, exc_info=True,
            )
            return None

    async def close(self) -> None:
        for listener in self._udp:
            self.loop.remove_reader(listener.sock.fileno())
            listener.sock.close()
        for server in self._tcp_servers:
            server.close()
        self.tcp.close()
        self._notice_timer.cancel()
        self.resolver.notices.flush(self.loop.time())
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.forwarder.close()
        for server in self._tcp_servers:
            await server.wait_closed()
        self._udp.clear()
        self._tcp_servers.clear()


async def start_dns_server(settings: DnsSettings, *, query_log: bool = False) -> DnsServer:
    """Bind every listener of `settings` and start answering; raises ListenError (or DnsStartError) when
    it cannot. The caller says where it listens (`addresses`), once everything it starts is up."""
    server = DnsServer(settings, query_log=query_log)
    try:
        await server._listen()
    except BaseException:
        await server.close()
        raise
    return server
