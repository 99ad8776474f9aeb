"""What the listener guard (interceptor/listeners.py) costs a request, next to the same aiohttp
application served without it, in the same process and the same run.

One server process serves one constant handler twice: on a plain aiohttp TCPSite, and through
`start_listener` with limits far above the load (so the connection table, the token bucket and the
timers all run on every request, and nothing is refused). N clients on kept-alive connections send
requests one after the other, alternately to each side; each side runs `--repeats` times and the
medians are reported. The server runs on one core, the clients on the other; all on 127.0.0.1, every
loop bounded by a count.

    .venv/bin/python bench/listener.py [--requests 20000] [--clients 10] [--repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from conversation import cpu_seconds, free_port, percentile, pin_cores, run, wait_for  # noqa: E402

from interceptor.withings.scale import read_response, request_bytes  # noqa: E402

SERVER = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    from interceptor.limits import ListenerLimits
    from interceptor.listeners import start_listener
    from interceptor.runtime import run

    BODY = b'{"status":0}'
    LIMITS = ListenerLimits(rate_limit=1e9, rate_burst=10**9, max_connections=10**4,
                            max_connections_per_client=10**4)

    async def constant(request):
        await request.read()
        return web.Response(body=BODY, headers={"Content-Type": "text/plain"})

    def app():
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", constant)
        return application

    async def main(plain_port, guarded_port):
        plain = web.AppRunner(app(), access_log=None)
        await plain.setup()
        await web.TCPSite(plain, "127.0.0.1", plain_port).start()
        await start_listener(app(), "127.0.0.1", guarded_port, LIMITS, access_log=None)
        await asyncio.Event().wait()

    run(main(int(sys.argv[1]), int(sys.argv[2])))
""")
REQUEST = request_bytes("/cgi-bin/once", b"action=get")


async def load(port: int, clients: int, total: int) -> tuple[float, list[float]]:
    """`clients` kept-alive connections share `total` requests; (seconds, latencies in ms)."""
    latencies: list[float] = []

    async def client() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for _ in range(total // clients):
                started = time.perf_counter()
                writer.write(REQUEST)
                if (await read_response(reader)).status != 200:
                    raise RuntimeError("a request was refused")
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - started, latencies


def measure(port: int, pid: int, clients: int, total: int) -> tuple[float, float, float, float]:
    """requests/s, p50 ms, p99 ms, server CPU µs per request."""
    cpu_before = cpu_seconds(pid)
    seconds, latencies = run(load(port, clients, total))
    cpu_us = (cpu_seconds(pid) - cpu_before) * 1e6 / len(latencies)
    return len(latencies) / seconds, statistics.median(latencies), percentile(latencies, 0.99), cpu_us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    arguments = parser.parse_args()
    plain_port, guarded_port = free_port(), free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(plain_port), str(guarded_port)], cwd=ROOT)
    try:
        wait_for(plain_port, server)
        wait_for(guarded_port, server)
        pin_cores(server.pid)
        for port in (plain_port, guarded_port):  # warm-up, not counted
            measure(port, server.pid, arguments.clients, 2000)
        plain, guarded = [], []
        for _ in range(arguments.repeats):
            plain.append(measure(plain_port, server.pid, arguments.clients, arguments.requests))
            guarded.append(measure(guarded_port, server.pid, arguments.clients, arguments.requests))
    finally:
        server.terminate()
        server.wait(timeout=10)

    def medians(runs: list[tuple[float, float, float, float]]) -> list[float]:
        return [statistics.median(run[index] for run in runs) for index in range(4)]

    plain_figures, guarded_figures = medians(plain), medians(guarded)
    print(f"{arguments.clients} clients, {arguments.requests} requests a run, medians of {arguments.repeats} runs")
    print("| listener | requests/s | p50 ms | p99 ms | server CPU µs/request |")
    print("|---|---:|---:|---:|---:|")
    for name, (rate, p50, p99, cpu) in (("plain aiohttp", plain_figures), ("guarded", guarded_figures)):
        print(f"| {name} | {rate:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.1f} |")
    print(f"ratio guarded/plain: requests/s {guarded_figures[0] / plain_figures[0]:.3f},"
          f" CPU per request {guarded_figures[3] / plain_figures[3]:.3f}"
          f" (+{guarded_figures[3] - plain_figures[3]:.1f} µs)")


if __name__ == "__main__":
    main()
