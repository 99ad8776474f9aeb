"""DNS over TCP (RFC 7766): many queries per connection, answers as they complete, and limits so that
no client can hold the listener for itself.

Issue 11 measured 100 idle connections from one client locking every other TCP client out for 10 s.
The limits, each a `[dns]` setting:

* a connection must deliver a whole query within `tcp_idle_timeout` of opening or of its previous
  one; silent, or stuck halfway through a message, it is closed (RFC 7766 §6.2.3 recommends an idle
  period "on the order of seconds");
* however busy, it is closed after `tcp_max_lifetime`, once the answers it is owed are sent;
* a client that does not read its answers is dropped when one cannot be sent within
  `tcp_idle_timeout`, or when WRITE_BUFFER_LIMIT bytes of answers wait for it;
* one client address holds at most `max_tcp_per_client` connections, everyone together
  `max_tcp_connections` (RFC 7766 §6.1 lets servers limit connections per client address). At a
  cap the newcomer is not turned away while someone sits idle: it takes the place of an idle
  connection (no answer owed) of whoever holds the most, the oldest first, so a client that hoards
  connections loses its own. Only when every connection in the way is busy is the newcomer closed.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

from interceptor.dns.resolver import Forward
from interceptor.limits import ConnectionTable

if TYPE_CHECKING:
    from interceptor.dns.server import DnsServer

LENGTH = struct.Struct("!H")
WRITE_BUFFER_LIMIT = 256 * 1024  # four largest messages waiting for a client that does not read


@dataclass(eq=False, slots=True)
class Connection:
    """One client connection; `owed` counts forwarded queries whose answers are still to be sent."""

    client_ip: str
    writer: asyncio.StreamWriter
    owed: int = 0

    @property
    def busy(self) -> bool:
        return self.owed > 0

    def drop(self) -> None:
        """Close at once, discarding unsent bytes: its handler sees end-of-stream and finishes."""
        self.writer.transport.abort()


class TcpService:
    """Serves the connections of every TCP listener of one DnsServer, under one ConnectionTable."""

    def __init__(self, server: DnsServer) -> None:
        self.server = server
        settings = server.settings
        self.idle_timeout = settings.tcp_idle_timeout
        self.lifetime = settings.tcp_max_lifetime
        self.answer_wait = settings.query_timeout + 1
        self.table = ConnectionTable(settings.max_tcp_per_client, settings.max_tcp_connections)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """The `asyncio.start_server` callback: one connection, from accept to close."""
        server = self.server
        loop = server.loop
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        connection = Connection(peer[0], writer)
        if not self.table.admit(connection):
            server.resolver.notices.notice(
                loop.time(), peer[0], "closed a new DNS-over-TCP connection from %s: every connection in the "
                "way of [dns] max_tcp_per_client or max_tcp_connections is busy", peer[0],
            )
            writer.transport.abort()
            return
        end_of_life = loop.time() + self.lifetime
        answers: set[asyncio.Task[None]] = set()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(min(loop.time() + self.idle_timeout, end_of_life)):
                        (length,) = LENGTH.unpack(await reader.readexactly(2))
                        data = await reader.readexactly(length)
                except (TimeoutError, asyncio.IncompleteReadError):
                    break
                result = server.resolver.handle(data, peer[0], local[0], loop.time(), True)
                if result is None:
                    continue
                if isinstance(result, bytes):
                    writer.write(LENGTH.pack(len(result)) + result)
                    async with asyncio.timeout(self.idle_timeout):
                        await writer.drain()
                else:
                    connection.owed += 1
                    task = server.spawn(self._answer(result, connection))
                    answers.add(task)
                    task.add_done_callback(answers.discard)
            if answers:
                await asyncio.wait(answers, timeout=self.answer_wait)
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self.table.release(connection)
            await self._close(writer)

    async def _answer(self, forward: Forward, connection: Connection) -> None:
        try:
            reply = await self.server.ask_upstreams(forward)
            answer = self.server.resolver.finish(forward, reply, self.server.loop.time())
        finally:
            connection.owed -= 1
        writer = connection.writer
        if writer.is_closing():
            return
        writer.write(LENGTH.pack(len(answer)) + answer)
        if writer.transport.get_write_buffer_size() > WRITE_BUFFER_LIMIT:
            connection.drop()

    async def _close(self, writer: asyncio.StreamWriter) -> None:
        """Close after sending what is buffered, or at once if the client does not take it in time."""
        writer.close()
        try:
            async with asyncio.timeout(self.idle_timeout):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            writer.transport.abort()

    def close(self) -> None:
        """Drop every connection (the server is stopping); their handlers finish on their own."""
        for connection in self.table.connections():
            connection.drop()
