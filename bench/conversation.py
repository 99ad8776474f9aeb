"""Whole scale conversations per second against `interceptor serve`, next to a bare aiohttp baseline.

N simulated scales (raw TCP, one kept-alive connection per conversation, the real four requests:
once, session new, measure store, session delete) talk to a real `interceptor serve` process whose
journal commits every weigh-in with fsync. In the same run, the same load goes to a bare aiohttp
handler that answers every request with a constant, so the ratio says what our protocol handling and
durable write cost on this machine, whatever its speed. Everything stays on 127.0.0.1 and every loop
is bounded by a count.

    .venv/bin/python bench/conversation.py [--conversations-per-level 600]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interceptor.withings.scale import ScaleIdentity, weigh_in  # noqa: E402

LEVELS = (1, 10, 50)
CONFIG = """
[household]
timezone = "Europe/Paris"
[[users]]
slug = "anna"
name = "Anna"
short_name = "ANN"
sex = "female"
birth_date = "1986-04-12"
height_cm = 168
"""

# The baseline: aiohttp with one handler that returns a constant, session-shaped so the simulated
# scale can read a session id from it; on uvloop when `interceptor serve` has it too, for a fair ratio.
BARE_SERVER = textwrap.dedent("""
    import asyncio, sys
    from aiohttp import web
    try:
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    BODY = b'{"status":0,"body":{"sessionid":"1-2-3","sp":{"users":[{"id":1}]}}}'
    async def constant(request):
        await request.read()
        return web.Response(body=BODY, headers={"Content-Type": "text/plain"})
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", constant)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def pin_cores(*server_pids: int) -> None:
    """The servers on one core, the simulated scales on the other, so that neither measures the
    scheduler moving the other around; a no-op on a machine with a single core."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return
    for pid in server_pids:
        os.sched_setaffinity(pid, {cores[-1]})
    os.sched_setaffinity(0, set(cores[:-1]))


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used: a figure the load generator's own CPU use cannot blur."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_level(port: int, scales: int, total: int, first_meastime: int) -> tuple[float, list[float]]:
    """`scales` concurrent scales share `total` conversations; returns (seconds, latencies in ms)."""
    latencies: list[float] = []
    per_scale = max(1, total // scales)

    async def one_scale(index: int) -> None:
        identity = ScaleIdentity(mac=f"00:24:e4:{index >> 8 & 255:02x}:{index & 255:02x}:01")
        for round_number in range(per_scale):
            meastime = first_meastime + index * per_scale + round_number
            started = time.perf_counter()
            conversation = await asyncio.wait_for(
                weigh_in("127.0.0.1", port, scale=identity, meastime=meastime, weight_g=70000 + round_number),
                timeout=30,
            )
            latencies.append((time.perf_counter() - started) * 1000)
            if conversation.response(2).json()["status"] != 0:
                raise RuntimeError("the server refused a weigh-in")

    started = time.perf_counter()
    await asyncio.gather(*(one_scale(index) for index in range(scales)))
    return time.perf_counter() - started, latencies


def run(coroutine: Any) -> Any:
    """The simulated scales on uvloop when installed: the load generator shares the two cores with
    the servers it measures, so the less CPU it spends, the less of it shows up as latency."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def measure(port: int, pid: int, total: int, first_meastime: int) -> dict[int, tuple[float, float, float, float]]:
    """Per level: conversations/s, p50 ms, p99 ms, server CPU ms per conversation."""
    results = {}
    run(run_level(port, 5, 50, first_meastime - 1_000_000))  # warm-up, not counted
    for scales in LEVELS:
        cpu_before = cpu_seconds(pid)
        seconds, latencies = run(run_level(port, scales, total, first_meastime + scales * 100_000))
        cpu_ms = (cpu_seconds(pid) - cpu_before) * 1000 / len(latencies)
        results[scales] = (len(latencies) / seconds, statistics.median(latencies), percentile(latencies, 0.99), cpu_ms)
    return results


def median_of(runs: list[dict[int, tuple[float, ...]]]) -> dict[int, tuple[float, ...]]:
    """Each figure of each level: its median over the runs (this VM is noisy; one run can be an outlier)."""
    return {scales: tuple(statistics.median(run[scales][index] for run in runs) for index in range(4))
            for scales in LEVELS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations-per-level", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side, alternating; medians reported")
    arguments = parser.parse_args()
    total = arguments.conversations_per_level
    first_meastime = int(time.time()) - 200_000_000  # about six years ago: distinct, plausible weigh-in times

    with tempfile.TemporaryDirectory() as scratch:
        config = Path(scratch) / "interceptor.toml"
        config.write_text(CONFIG)
        ours_port, bare_port = free_port(), free_port()
        ours = subprocess.Popen(
            [str(Path(sys.executable).parent / "interceptor"), "serve", "--no-dns", "--config", str(config),
             "--data-dir", str(Path(scratch) / "data"), "--http-listen", f"127.0.0.1:{ours_port}",
             "--web-listen", f"127.0.0.1:{free_port()}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for(ours_port, ours)
            wait_for(bare_port, bare)
            pin_cores(ours.pid, bare.pid)
            time.sleep(1.0)
            idle_rss = rss_mb(ours.pid)
            bare_idle_rss = rss_mb(bare.pid)
            ours_runs, bare_runs = [], []
            for repeat in range(arguments.repeats):
                ours_runs.append(measure(ours_port, ours.pid, total, first_meastime + repeat * 10_000_000))
                bare_runs.append(measure(bare_port, bare.pid, total, first_meastime + repeat * 10_000_000))
            loaded_rss = rss_mb(ours.pid)
            ours_results, bare_results = median_of(ours_runs), median_of(bare_runs)
            p99_runs = [run[10][2] for run in ours_runs]
        finally:
            for process in (ours, bare):
                process.terminate()
                process.wait(timeout=10)

    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}; {total} conversations per level;"
          f" medians of {arguments.repeats} alternating runs")
    print("scales | ours conv/s  p50 ms  p99 ms  CPU ms/conv | bare conv/s  p50 ms  p99 ms  CPU ms/conv"
          " | ratio conv/s  ratio p99  ratio CPU")
    for scales in LEVELS:
        rate, p50, p99, cpu = ours_results[scales]
        bare_rate, bare_p50, bare_p99, bare_cpu = bare_results[scales]
        print(f"{scales:>6} | {rate:>11.0f}  {p50:>6.2f}  {p99:>6.2f}  {cpu:>11.2f} | {bare_rate:>11.0f}"
              f"  {bare_p50:>6.2f}  {bare_p99:>6.2f}  {bare_cpu:>11.2f} | {rate / bare_rate:>12.2f}"
              f"  {p99 / bare_p99:>9.2f}  {cpu / bare_cpu:>9.2f}")
    print(f"RSS: interceptor serve idle {idle_rss:.1f} MB, after load {loaded_rss:.1f} MB;"
          f" bare aiohttp idle {bare_idle_rss:.1f} MB")
    p99_at_10 = ours_results[10][2]
    print(f"p99 at 10 scales in each run: {', '.join(f'{value:.2f}' for value in p99_runs)} ms")
    print(f"floors: p99 at 10 scales {p99_at_10:.2f} ms (<= 25: {'ok' if p99_at_10 <= 25 else 'MISSED'}),"
          f" idle RSS {idle_rss:.1f} MB (<= 60: {'ok' if idle_rss <= 60 else 'MISSED'})")


if __name__ == "__main__":
    main()
