"""Helpers for the DNS tests: a dnslib upstream with injectable faults, free ports, a dnspython client."""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.asyncquery
import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from dnslib import AAAA, EDNS0, QTYPE, RR, SOA, A, DNSRecord

UPSTREAM_ADDRESS = "127.0.0.20"


def free_port(host: str = "127.0.0.1") -> int:
    """A port free for both UDP and TCP on `host` right now (external servers need a number up front)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            udp.bind((host, 0))
            port = udp.getsockname()[1]
            with socket.socket(family, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind((host, port))
                except OSError:
                    continue
                return int(port)
    raise RuntimeError("no free port on loopback")


@dataclass
class UpstreamLog:
    queries: list[DNSRecord] = field(default_factory=list)

    def names(self) -> list[str]:
        return [str(query.q.qname).lower() for query in self.queries]


class FakeUpstream:
    """A small authoritative-style DNS server written with dnslib, standing in for the household's
    router or a public resolver, whose misbehaviour the tests choose.

    It answers every name with A 127.0.0.20 (TTL 60), except: `nx.*` NXDOMAIN with an SOA (negative
    TTL 30), `nodata.*` NOERROR without records plus SOA, `big.*` 120 A records (about 2 kB: too big
    for any UDP answer of ours), `mid.*` 60 A records (about 1 kB: too big for 512-byte UDP, not for
    1,232), `ttl1.*` TTL 1, `ttl5000.*` TTL 5000. Faults (`mode`): "silent" never answers, "slow"
    answers after `delay`, "truncate" sets TC on every UDP answer (TCP is complete), "wrong-id"
    answers UDP with a different id, "spoof-first" sends a wrong-id answer with another address
    before the right one, "servfail" answers SERVFAIL, "malformed" cuts the last bytes off its answer.
    """

    def __init__(self, mode: str = "ok", delay: float = 0.0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.mode = mode
        self.delay = delay
        self.log = UpstreamLog()
        self.port = 0
        self._transport: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def answer(self, request: DNSRecord, tcp: bool) -> DNSRecord:
        reply = request.reply()
        name = str(request.q.qname).lower()
        soa = RR(request.q.qname, QTYPE.SOA, ttl=300, rdata=SOA("ns.test.", "root.test.", (1, 3600, 600, 86400, 30)))
        if self.mode == "servfail":
            reply.header.rcode = 2
        elif name.startswith("nx."):
            reply.header.rcode = 3
            reply.add_auth(soa)
        elif name.startswith("nodata."):
            reply.add_auth(soa)
        elif request.q.qtype == QTYPE.AAAA:
            reply.add_answer(RR(request.q.qname, QTYPE.AAAA, ttl=60, rdata=AAAA("fd00::20")))
        else:
            ttl = 1 if name.startswith("ttl1.") else 5000 if name.startswith("ttl5000.") else 60
            count = 120 if name.startswith("big.") else 60 if name.startswith("mid.") else 1
            for index in range(count):
                address = UPSTREAM_ADDRESS if count == 1 else f"10.0.{index // 250}.{index % 250 + 1}"
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=ttl, rdata=A(address)))
        opt = next((record for record in request.ar if record.rtype == QTYPE.OPT), None)
        if opt is not None:
            reply.add_ar(EDNS0(udp_len=1232, flags="do" if opt.ttl & 0x8000 else ""))
        if self.mode == "truncate" and not tcp:
            reply.rr = []
            reply.auth = []
            reply.header.tc = 1
        return reply

    async def start(self) -> FakeUpstream:
        loop = asyncio.get_running_loop()
        upstream = self

        class Udp(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: Any) -> None:
                task = loop.create_task(upstream._udp_reply(data, addr))
                upstream._tasks.add(task)
                task.add_done_callback(upstream._tasks.discard)

        for _ in range(20):  # the UDP port may be taken for TCP: try another
            self._transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=(self.host, 0))
            self.port = self._transport.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._serve_tcp, self.host, self.port)
            except OSError:
                self._transport.close()
                continue
            return self
        raise RuntimeError(f"no port free for both UDP and TCP on {self.host}")

    async def _udp_reply(self, data: bytes, addr: Any) -> None:
        request = DNSRecord.parse(data)
        self.log.queries.append(request)
        if self.mode == "silent":
            return
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.answer(request, tcp=False)
        assert self._transport is not None
        if self.mode in ("wrong-id", "spoof-first"):
            forged = request.reply()
            forged.header.id = (request.header.id + 1) % 65536
            forged.add_answer(RR(request.q.qname, QTYPE.A, ttl=60, rdata=A("6.6.6.6")))
            self._transport.sendto(forged.pack(), addr)
            if self.mode == "wrong-id":
                return
        self._transport.sendto(reply.pack()[:-3] if self.mode == "malformed" else reply.pack(), addr)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (length,) = struct.unpack("!H", await reader.readexactly(2))
                request = DNSRecord.parse(await reader.readexactly(length))
                self.log.queries.append(request)
                if self.mode == "silent":
                    continue
                payload = self.answer(request, tcp=True).pack()
                writer.write(struct.pack("!H", len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if self._tcp is not None:
            self._tcp.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def wait_for_port(port: int, host: str = "127.0.0.1", deadline: float = 5.0) -> None:
    """Block until a TCP connect to the port succeeds (the external server is ready)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listened on {host}:{port} within {deadline} s")


def required_binary(name: str) -> str:
    """The path of a Debian tool the tests need; missing means the test setup is broken, so fail."""
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/sbin/{name}") if Path(p).exists()), None)
    if path is None:
        pytest.fail(f"{name} is not installed: apt-get install -y {name} (listed in scripts/debian-test-packages.txt)")
    return path


async def ask(
    port: int,
    name: str,
    rdtype: str | int = "A",
    *,
    host: str = "127.0.0.1",
    tcp: bool = False,
    edns: bool = False,
    payload: int = 1232,
    dnssec: bool = False,
    source: str | None = None,
    timeout: float = 3.0,
) -> dns.message.Message:
    """One query with dnspython, over UDP (no retry over TCP, so TC stays visible) or TCP."""
    if edns or dnssec:
        query = dns.message.make_query(name, rdtype, use_edns=0, want_dnssec=dnssec, payload=payload)
    else:
        query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, host, port=port, timeout=timeout, source=source)
    return await dns.asyncquery.udp(query, host, port=port, timeout=timeout, source=source, ignore_trailing=True)


def framed(name: str, qtype: str = "A") -> bytes:
    """A query as DNS over TCP carries it: two length bytes, then the message."""
    wire = dns.message.make_query(name, qtype).to_wire()
    return struct.pack("!H", len(wire)) + wire


async def closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    """True when the server ends the connection (end of stream or reset) within `within` seconds."""
    try:
        async with asyncio.timeout(within):
            while await reader.read(65536):
                pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def addresses(message: dns.message.Message) -> list[str]:
    return [item.address for rrset in message.answer for item in rrset if rrset.rdtype in (1, 28)]


def rcode(message: dns.message.Message) -> str:
    return dns.rcode.to_text(message.rcode())


def rdtype(name: str) -> int:
    return int(dns.rdatatype.from_text(name))


def first_dns_answer(port: int, name: str = "scalews.withings.net") -> dns.message.Message:
    """`serve`'s answer to an A query, asked again while it is still binding its DNS listeners
    (they come up just after the HTTP ones); fails when it never answers."""
    for _ in range(50):
        try:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.2)
        except (dns.exception.Timeout, ConnectionRefusedError):
            continue
    raise AssertionError(f"the DNS responder on 127.0.0.1:{port} never answered")
