"""Real DNS servers on loopback ports for the responder's tests: the dnslib upstream of
`dns_support`, Debian's dnsmasq, and the responder itself. Every server a fixture starts, it stops."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from dns_support import FakeUpstream, free_port, required_binary, wait_for_port

from interceptor.dns.server import DnsServer, start_dns_server
from interceptor.dns.settings import DnsSettings


@pytest.fixture
async def make_upstream() -> AsyncIterator[Callable[..., Any]]:
    started: list[FakeUpstream] = []

    async def make(mode: str = "ok", delay: float = 0.0, host: str = "127.0.0.1") -> FakeUpstream:
        upstream = await FakeUpstream(mode, delay, host).start()
        started.append(upstream)
        return upstream

    yield make
    for upstream in started:
        await upstream.stop()


@pytest.fixture
async def upstream(make_upstream: Callable[..., Any]) -> FakeUpstream:
    result: FakeUpstream = await make_upstream()
    return result


@pytest.fixture
async def make_responder() -> AsyncIterator[Callable[..., Any]]:
    """Start the responder on free loopback ports (IPv4 and IPv6) with the given settings."""
    started: list[DnsServer] = []

    async def make(**overrides: Any) -> DnsServer:
        values: dict[str, Any] = {"listen": ("127.0.0.1:0", "[::1]:0"), "upstreams": ("127.0.0.1:9",)}
        values.update(overrides)
        server = await start_dns_server(DnsSettings(**values))
        started.append(server)
        return server

    yield make
    for server in started:
        await server.close()


@pytest.fixture
def run_daemon(tmp_path: Path) -> Iterator[Callable[..., int]]:
    """Run an external DNS daemon in the foreground with a config file; stopped at teardown."""
    processes: list[subprocess.Popen[bytes]] = []

    def run(argv: list[str], port: int) -> int:
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=(tmp_path / "daemon.log").open("ab"))
        processes.append(process)
        try:
            wait_for_port(port)
        except RuntimeError:
            process.kill()
            raise RuntimeError((tmp_path / "daemon.log").read_text()) from None
        return process.pid

    yield run
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def dnsmasq(tmp_path: Path, run_daemon: Callable[..., int]) -> Callable[[str], int]:
    """Start Debian's dnsmasq with extra config lines on a free loopback port; returns the port."""
    binary = required_binary("dnsmasq")

    def start(extra: str) -> int:
        port = free_port()
        conf = tmp_path / f"dnsmasq-{port}.conf"
        conf.write_text(
            f"port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n"
            f"user=\npid-file=\n{extra}\n"
        )
        run_daemon([binary, "--keep-in-foreground", "--conf-file=" + str(conf)], port)
        return port

    return start




def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every in-process DNS test runs on both loops: `interceptor serve` and `interceptor dns` run on
    uvloop, which lacks some asyncio socket helpers (sock_recvfrom) the tests would otherwise not see."""
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}
