"""The TLS probe in a real `interceptor serve`, and what `doctor` makes of it: three "scales" on their
own loopback addresses ask the DNS responder for the scale's host; one then tries TLS (Python's ssl,
OpenSSL), one talks HTTP, one does nothing more. The probe's limits hold against silent, greedy and
garbage-sending clients, and the server keeps answering."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query

from interceptor.withings import scale
from tests.conftest import HOUSEHOLD_TOML, free_port, run_cli, start_server

SCALE = "scalews.withings.net"
TLS_SCALE, HTTP_SCALE, SILENT_SCALE, GREEDY = "127.0.0.23", "127.0.0.24", "127.0.0.25", "127.0.0.26"


def ask_dns(port: int, source: str) -> list[str]:
    """Asked again while the responder may still be binding (it starts just after the HTTP listeners)."""
    for _ in range(40):
        try:
            answer = dns.query.udp(dns.message.make_query(SCALE, "A"), "127.0.0.1", port=port, source=source,
                                   timeout=0.25)
        except (dns.exception.Timeout, ConnectionRefusedError):
            continue
        return [item.address for rrset in answer.answer for item in rrset]
    raise AssertionError("the DNS responder never answered")


def try_tls(port: int, source: str) -> str:
    """What OpenSSL says when the probe has read its hello and closed."""
    context = ssl.create_default_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0)) as raw:
        try:
            with context.wrap_socket(raw, server_hostname=SCALE):
                return "handshake completed"
        except (ssl.SSLError, ConnectionError) as error:
            return str(error)


def connection(port: int, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(source, 0))
    return sock


def closed(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(100) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_doctor_tells_a_tls_scale_from_an_http_one(tmp_path: Path) -> None:
    config = tmp_path / "interceptor.toml"
    config.write_text(HOUSEHOLD_TOML + '\n[dns]\nupstreams = ["127.0.0.1:9"]\n'
                      "[tls_probe]\nmax_connections_per_client = 2\nread_timeout_s = 0.5\n", encoding="utf-8")
    dns_port, tls_port = free_port(), free_port()
    served = start_server(config, tmp_path / "data", options=("--dns-listen", f"127.0.0.1:{dns_port}",
                                                               "--tls-probe-listen", f"127.0.0.1:{tls_port}"))
    try:
        for source in (TLS_SCALE, HTTP_SCALE, SILENT_SCALE):
            assert ask_dns(dns_port, source) == ["127.0.0.1"]
        refused = try_tls(tls_port, TLS_SCALE)
        assert "HANDSHAKE_FAILURE" in refused.upper(), refused  # the probe's alert, then it closed
        stored = asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 30,
                                            weight_g=80000, source=HTTP_SCALE))
        assert stored.response(2).json()["status"] == 0

        # Limits: beyond two at once from one address, its oldest silent connection makes room; a silent
        # connection is closed after read_timeout_s; garbage is read, judged and closed; the probe then
        # still reads a hello.
        first, second = connection(tls_port, GREEDY), connection(tls_port, GREEDY)
        time.sleep(0.1)  # both admitted, in this order
        third = connection(tls_port, GREEDY)
        assert closed(first, 0.3)  # dropped at once to make room, long before its read timeout
        assert closed(second, 3.0) and closed(third, 3.0)
        with connection(tls_port, GREEDY) as garbage:
            garbage.sendall(b"GET / HTTP/1.1\r\nHost: scalews.withings.net\r\n\r\n" * 50)
            assert closed(garbage, 3.0)
        assert "HANDSHAKE_FAILURE" in try_tls(tls_port, GREEDY).upper()

        report = ""
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # serve saves what it saw every 2 s at most
            report = run_cli("doctor", "--config", str(config), "--data-dir", str(served.data_dir)).stdout
            if f"scale {SILENT_SCALE}" in report and f"scale {TLS_SCALE}: the scale" in report:
                break
            time.sleep(0.5)
    finally:
        log = served.kill()
    lines = {line.split(":")[0]: line for line in report.splitlines()}
    assert lines[f"FAIL  scale {TLS_SCALE}"].startswith(
        f"FAIL  scale {TLS_SCALE}: the scale at {TLS_SCALE} asked for {SCALE} and tried TLS on {tls_port} (TLS 1.3,"
        f" server name {SCALE}): this model does not upload over plain HTTP"), report
    assert lines[f"ok    scale {HTTP_SCALE}"].startswith(
        f"ok    scale {HTTP_SCALE}: asked for {SCALE} and talks to us over HTTP (4 request(s)"), report
    assert lines[f"warn  scale {SILENT_SCALE}"].endswith(
        "never talked HTTP to us: is port 80 of this box reachable from it (a firewall)?"), report
    assert f"TLS probe: {TLS_SCALE} opened TLS 1.3 for {SCALE}" in log
    assert "Traceback" not in log
