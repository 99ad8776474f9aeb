"""Not an open resolver, bounded under load, and unbreakable by bad packets (hypothesis fuzz included)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import dns.message
import pytest
from dns_support import UPSTREAM_ADDRESS, FakeUpstream, addresses, ask, closed_by_server, framed, rcode
from dnslib import DNSRecord
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.dns.resolver import Forward, Resolver
from interceptor.dns.settings import DnsSettings, InterceptRule
from interceptor.dns.wire import WireError, inspect_reply, name_text, parse_query
from interceptor.startup import Listener, ListenError, explain

Factory = Callable[..., Any]


def _resolver(*, log_queries: bool = False, **overrides: Any) -> Resolver:
    return Resolver(DnsSettings(**overrides), lambda client, listener, now: "192.168.1.2", log_queries=log_queries)


def _query_bytes(name: str = "scalews.withings.net", qtype: str = "A") -> bytes:
    return bytes(DNSRecord.question(name, qtype).pack())


def test_clients_outside_local_networks_are_refused_by_default() -> None:
    resolver = _resolver()
    for client in ("8.8.8.8", "2001:db8::1", "100.64.0.1"):
        reply = resolver.handle(_query_bytes(), client, "0.0.0.0", 0.0, False)
        assert isinstance(reply, bytes) and reply[3] & 0xF == 5, client
    for client in ("127.0.0.1", "192.168.1.50", "10.1.2.3", "172.20.0.1", "fe80::1", "fd00::5", "::1"):
        reply = resolver.handle(_query_bytes(), client, "0.0.0.0", 0.0, False)
        assert isinstance(reply, bytes) and reply[3] & 0xF == 0, client
    assert resolver.handle(b"\x00\x01garbage", "8.8.8.8", "0.0.0.0", 0.0, False) is None


async def test_allow_clients_is_configurable(make_responder: Factory) -> None:
    server = await make_responder(allow_clients=("127.0.0.2/32",))
    port = server.addresses[0][1]
    assert rcode(await ask(port, "scalews.withings.net", source="127.0.0.1")) == "REFUSED"
    assert rcode(await ask(port, "scalews.withings.net", source="127.0.0.2")) == "NOERROR"


async def test_per_client_rate_limit(make_responder: Factory) -> None:
    server = await make_responder(rate_limit=1, rate_burst=3)
    port = server.addresses[0][1]
    codes = [rcode(await ask(port, "scalews.withings.net")) for _ in range(5)]
    assert codes == ["NOERROR"] * 3 + ["REFUSED"] * 2
    assert rcode(await ask(port, "scalews.withings.net", source="127.0.0.9")) == "NOERROR"


async def test_beyond_max_in_flight_answers_refused_at_once(make_responder: Factory, make_upstream: Factory) -> None:
    silent = await make_upstream("silent")
    server = await make_responder(
        upstreams=(silent.address,), max_in_flight=3, query_timeout=0.6, upstream_timeout=0.6
    )
    port = server.addresses[0][1]
    started = time.monotonic()
    first = [asyncio.ensure_future(ask(port, f"wait{index}.test")) for index in range(3)]
    await asyncio.sleep(0.05)
    over = await asyncio.gather(*(ask(port, f"over{index}.test") for index in range(4)))
    assert [rcode(reply) for reply in over] == ["REFUSED"] * 4
    assert time.monotonic() - started < 0.3
    assert [rcode(reply) for reply in await asyncio.gather(*first)] == ["SERVFAIL"] * 3
    assert server.resolver.in_flight == 0


async def test_malformed_upstream_reply_becomes_servfail(make_responder: Factory, make_upstream: Factory) -> None:
    broken = await make_upstream("malformed")
    server = await make_responder(upstreams=(broken.address,))
    assert rcode(await ask(server.addresses[0][1], "cut.test")) == "SERVFAIL"


def _header(qdcount: int = 1, flags: int = 0x0100, ancount: int = 0, arcount: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 0x1234, flags, qdcount, ancount, 0, arcount)


BAD_PACKETS: dict[str, bytes] = {
    "empty": b"",
    "short": b"\x12\x34\x01",
    "header only": _header(),
    "self pointer in question": _header() + b"\xc0\x0c\x00\x01\x00\x01",
    "forward pointer in question": _header() + b"\xc0\x20" + b"\x00" * 40,
    "label past end": _header() + b"\x3fabc",
    "no type": _header() + b"\x03abc\x00",
    "two questions": _header(qdcount=2) + b"\x03abc\x00\x00\x01\x00\x01" * 2,
    "answer with pointer loop": _header(ancount=1) + b"\x03abc\x00\x00\x01\x00\x01" + b"\xc0\x1d" * 20,
    "opt past end": _header(arcount=1) + b"\x03abc\x00\x00\x01\x00\x01\x00\x00\x29\x10\x00\x00\x00\x00\x00\xff\xff",
    "response": _header(flags=0x8180) + b"\x03abc\x00\x00\x01\x00\x01",
    "notify opcode": _header(flags=0x2000) + b"\x03abc\x00\x00\x06\x00\x01",
    "name too long": _header() + b"\x3f" + b"a" * 63 + (b"\x3f" + b"a" * 63) * 4 + b"\x00\x00\x01\x00\x01",
    "oversized": _header() + b"\x03abc\x00\x00\x01\x00\x01" + b"\xff" * 60_000,
    "garbage": bytes(range(256)) * 8,
}


async def test_bad_packets_never_stop_the_server(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.connect(("127.0.0.1", port))
        for name, packet in BAD_PACKETS.items():
            await loop.sock_sendall(sock, packet)
            try:
                async with asyncio.timeout(0.3):
                    reply = await loop.sock_recv(sock, 65535)
            except TimeoutError:
                assert name in ("empty", "short", "response"), f"{name}: no reply"
                continue
            assert name not in ("empty", "short", "response"), f"{name}: must stay silent"
            assert reply[:2] == packet[:2] and reply[3] & 0xF in (1, 4), name  # FORMERR or NOTIMP
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    for packet in (b"", BAD_PACKETS["self pointer in question"], b"\x00" * 11):
        writer.write(struct.pack("!H", len(packet)) + packet)
    writer.write(b"\xff\xff" + b"\x00" * 10)  # announces 65535 bytes, then hangs up
    await writer.drain()
    writer.close()
    assert addresses(await ask(port, "still.alive.test")) == [UPSTREAM_ADDRESS]
    assert addresses(await ask(port, "still.alive.test", tcp=True)) == [UPSTREAM_ADDRESS]


async def test_tcp_pipelining_idle_timeout_and_connection_cap(make_responder: Factory, make_upstream: Factory) -> None:
    slow = await make_upstream("slow", delay=0.2)
    server = await make_responder(upstreams=(slow.address,), tcp_idle_timeout=0.5, max_tcp_connections=2)
    port = server.addresses[0][1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    names = ["slow.test", "scalews.withings.net", "other.slow.test"]
    for index, name in enumerate(names):
        query = dns.message.make_query(name, "A")
        query.id = index
        wire = query.to_wire()
        writer.write(struct.pack("!H", len(wire)) + wire)
    await writer.drain()
    ids = []
    for _ in names:
        (length,) = struct.unpack("!H", await reader.readexactly(2))
        ids.append(dns.message.from_wire(await reader.readexactly(length)).id)
    assert ids[0] == 1 and sorted(ids) == [0, 1, 2]  # the intercepted answer did not wait for the slow ones
    second_reader, second_writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    third_reader, third_writer = await asyncio.open_connection("127.0.0.1", port)
    # Over the cap of 2: the newcomer takes the place of the oldest idle connection, the first one.
    assert await closed_by_server(reader, within=1.0)
    assert time.monotonic() - started < 0.3
    third_writer.write(framed("scalews.withings.net"))
    (length,) = struct.unpack("!H", await asyncio.wait_for(third_reader.readexactly(2), 1.0))
    assert dns.message.from_wire(await third_reader.readexactly(length)).answer
    assert await closed_by_server(second_reader, within=2.0)  # idle: closed by the server
    assert 0.2 < time.monotonic() - started < 1.0
    for stream_writer in (writer, second_writer, third_writer):
        stream_writer.close()



async def test_query_log_is_off_by_default(
    make_responder: Factory, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="interceptor.dns.queries")
    quiet = await make_responder(upstreams=(upstream.address,))
    await ask(quiet.addresses[0][1], "quiet.test")
    assert not [r for r in caplog.records if r.name == "interceptor.dns.queries"]
    loud = await make_responder(upstreams=(upstream.address,), query_log=True)
    await ask(loud.addresses[0][1], "loud.test")
    await ask(loud.addresses[0][1], "scalews.withings.net")
    lines = [r.getMessage() for r in caplog.records if r.name == "interceptor.dns.queries"]
    assert any("name=loud.test. type=A forwarded rcode=NOERROR" in line for line in lines)
    assert any("name=scalews.withings.net. type=A intercepted" in line for line in lines)


async def test_port_in_use_gives_a_clear_error(make_responder: Factory) -> None:
    """The responder says which address failed and why; the command words it with its own flag."""
    server = await make_responder(listen=("127.0.0.1:0",))
    port = server.addresses[0][1]
    with pytest.raises(ListenError) as taken:
        await make_responder(listen=(f"127.0.0.1:{port}",))
    assert explain(taken.value, Listener("--dns-listen")).startswith(
        f"DNS address 127.0.0.1:{port} is already in use: stop that program, or choose --dns-listen HOST:PORT")
    with pytest.raises(ListenError) as foreign:
        await make_responder(listen=("192.0.2.254:0",))
    assert "192.0.2.254 is not an address of this machine" in explain(foreign.value, Listener("--dns-listen"))


def test_privileged_port_message_says_what_to_do() -> None:
    problem = ListenError("DNS", "0.0.0.0", 53, PermissionError(13, "Permission denied"))
    message = explain(problem, Listener("--dns-listen", "run without the responder (--no-dns)"))
    assert "DNS port 53 needs privileges" in message and "cap_net_bind_service=+ep" in message
    assert message.endswith("--dns-listen HOST:PORT, or run without the responder (--no-dns)")


def test_settings_errors_say_what_to_write() -> None:
    with pytest.raises(ValueError, match=re.escape("write e.g. '192.168.1.10'")):
        InterceptRule(address="my-server")
    with pytest.raises(ValueError, match="subdomains = true"):
        InterceptRule(name="*.withings.net")
    with pytest.raises(ValueError, match=re.escape("not an address or subnet; write e.g.")):
        DnsSettings(allow_clients=("lan",))
    with pytest.raises(ValueError, match=re.escape("upstream_timeout = 0.8")):
        DnsSettings(upstream_timeout=5, query_timeout=2)
    with pytest.raises(ValueError, match="not HOST:PORT"):
        DnsSettings(listen=("53",))


FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(max_size=600))
def test_fuzz_any_bytes_get_an_answer_or_silence(data: bytes) -> None:
    resolver = _resolver(intercept=(InterceptRule(name="withings.net", subdomains=True),))
    for tcp in (False, True):
        result = resolver.handle(data, "192.168.1.7", "0.0.0.0", 1.0, tcp)
        if isinstance(result, Forward):
            assert len(resolver.finish(result, None, 1.0)) >= 12
        else:
            assert result is None or len(result) >= 12


labels = st.text("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789-_", min_size=1, max_size=20).map(str.encode)


def test_names_in_the_query_log_cannot_forge_lines() -> None:
    assert name_text(b"\x05a\nb.c\x03com\x00") == "a\\010b\\046c.com."
    assert name_text(b"\x00") == "."


@FUZZ
@given(
    st.lists(labels, min_size=1, max_size=6),
    st.integers(0, 65535),
    st.booleans(),
    st.booleans(),
    st.binary(max_size=40),
)
def test_fuzz_header_and_question_then_noise(
    name_labels: list[bytes], qtype: int, edns: bool, do: bool, noise: bytes
) -> None:
    """Valid questions agree with dnslib's decoding; whatever follows them never breaks the resolver."""
    qname = b"".join(bytes([len(label)]) + label for label in name_labels) + b"\x00"
    opt = b"\x00\x00\x29\x04\xd0\x00\x00" + (b"\x80\x00" if do else b"\x00\x00") + b"\x00\x00"
    packet = _header(arcount=1 if edns else 0) + qname + struct.pack("!HH", qtype, 1) + (opt if edns else b"")
    parsed = parse_query(packet)
    decoded = DNSRecord.parse(packet)
    assert (parsed.qtype, parsed.edns, parsed.do) == (decoded.q.qtype, edns, do and edns)
    assert parsed.qname == qname.lower() and parsed.udp_limit == (1232 if edns else 512)
    resolver = _resolver(log_queries=True)
    for data in (packet + noise, packet[: len(packet) - len(noise) % 7]):
        result = resolver.handle(data, "10.0.0.1", "10.0.0.53", 2.0, False)
        assert result is None or isinstance(result, bytes | Forward)


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_upstream_replies_only_raise_wire_error(data: bytes) -> None:
    with contextlib.suppress(WireError):
        inspect_reply(data)
