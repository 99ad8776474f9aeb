"""Issue 11 items 5 and 6 against a real `interceptor dns` process, as a guest on the network would
try them; the log is the process's own stderr, so its growth per junk query is what a user's disk sees."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import pytest
from dns_support import free_port, wait_for_port

INTERCEPTOR = Path(sys.executable).parent / "interceptor"


@dataclass
class Responder:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def stop(self) -> bytes:
        """SIGTERM, as systemd stops it; returns everything it logged."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=10)
        return self.log_path.read_bytes()


@pytest.fixture
def responder(tmp_path: Path) -> Iterator[Responder]:
    """`interceptor dns` on a loopback port, answering 127.0.0.1 and 127.0.0.2 only; everything else
    is at its default. 127.0.0.3 stands for a stranger."""
    port = free_port()
    config = tmp_path / "interceptor.toml"
    config.write_text(
        f'[dns]\nlisten = ["127.0.0.1:{port}"]\nupstreams = ["127.0.0.1:9"]\n'
        'allow_clients = ["127.0.0.1/32", "127.0.0.2/32"]\n'
    )
    log_path = tmp_path / "dns.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(INTERCEPTOR), "dns", "--config", str(config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path,
        )
    try:
        wait_for_port(port, deadline=15.0)
    except RuntimeError:
        process.kill()
        raise RuntimeError(log_path.read_text()) from None
    running = Responder(process, port, log_path)
    yield running
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


def test_a_hundred_idle_tcp_connections_do_not_lock_out_the_household(responder: Responder) -> None:
    hoard = []
    try:
        for _ in range(100):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sock.connect(("127.0.0.1", responder.port))
            hoard.append(sock)
        time.sleep(0.2)
        started = time.monotonic()
        query = dns.message.make_query("scalews.withings.net", "A")
        reply = dns.query.tcp(query, "127.0.0.1", port=responder.port, source="127.0.0.2", timeout=1.0)
        assert [item.address for rrset in reply.answer for item in rrset] == ["127.0.0.1"]
        assert time.monotonic() - started < 0.5  # the issue measured a 10 s lock-out
    finally:
        for sock in hoard:
            sock.close()
    assert b"Traceback" not in responder.stop()


def test_amplification_and_a_stranger_flood(responder: Responder) -> None:
    any_query = dns.message.make_query("example.com", "ANY", use_edns=0, payload=65000).to_wire()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        sock.sendto(any_query, ("127.0.0.1", responder.port))
        any_reply = sock.recv(65535)
    assert len(any_reply) <= 2 * len(any_query)  # the issue measured 12.8 kB for 43 bytes
    assert dns.message.from_wire(any_reply).answer[0].rdtype == dns.rdatatype.HINFO

    log_before = responder.log_path.stat().st_size
    junk = [
        dns.message.make_query(f"victim-{index}.example", "ANY", use_edns=0, payload=65000).to_wire()
        if index % 2 else bytes(index % 30)
        for index in range(4000)
    ]
    replies = 0
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.3", 0))  # a stranger, or a forged victim address
        sock.connect(("127.0.0.1", responder.port))
        for index, packet in enumerate(junk):
            sock.send(packet)
            if index % 200 == 199:
                time.sleep(0.01)
        sock.settimeout(0.3)
        try:
            while sock.recv(65535):
                replies += 1
        except TimeoutError:
            pass
    elapsed = time.monotonic() - started
    assert replies <= 5 + 5 * elapsed + 1  # [dns] refused_rate: 5 a second after a burst of 5
    query = dns.message.make_query("scalews.withings.net", "A")
    assert dns.query.udp(query, "127.0.0.1", port=responder.port, source="127.0.0.2", timeout=1.0).answer

    flood_log = responder.stop()[log_before:]
    per_query = len(flood_log) / len(junk)
    assert per_query < 1.0, f"{per_query:.2f} log bytes per junk query"
    assert flood_log.count(b"\n") <= 12, flood_log.decode()  # ten in full, a summary, the stop
    assert b"more refused or malformed DNS queries not logged" in flood_log
