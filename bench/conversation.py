"""Whole scale conversations per second: `interceptor serve`, the Node peer, and a bare aiohttp handler.

N simulated scales (raw TCP, one kept-alive connection per conversation, the real four requests:
once, session new, measure store, session delete) talk to a real `interceptor serve` process whose
journal commits every weigh-in with fsync. In the same run, alternating, the same load goes to a bare
aiohttp handler that answers every request with a constant (what our protocol handling and durable
write cost on this machine, whatever its speed) and, when given one, to a peer: another server that
speaks the Withings scale protocol (issue 10 measures pigsty/withings-server, a Node server). The
peer is not part of this project: build it yourself out of this tree, then pass the command that
runs it, with `{port}` (and optionally `{dir}`, a scratch directory for its database) in it, or the
URL of one already running on loopback. Without a peer the comparison is with the bare handler only,
and the output says so. Everything stays on 127.0.0.1 and every loop is bounded by a count.

    .venv/bin/python bench/conversation.py [--conversations-per-level 600] [--repeats 5]
        [--peer-command 'env PORT={port} SQLITE_PATH={dir}/peer.sqlite node /path/to/peer/server.js']
        [--peer-url http://127.0.0.1:PORT]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interceptor.withings.scale import ScaleIdentity, weigh_in  # noqa: E402

LEVELS = (1, 10, 50)
# Issue 10's floors: against the peer in the same run, or the bare handler where there is no peer.
FLOOR_PEER_RATIO = 2.0
FLOOR_BARE_RATIO = 0.35
FLOOR_P99_MS = 10.0
FLOOR_IDLE_RSS_MB = 60.0
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

# Up to 50 scales at once from one loopback address, which no household does: limits far above the
# load, so the listener's guard (connection table, token bucket) still runs on every request.
[http]
rate_limit = 1e9
rate_burst = 1000000
max_connections_per_client = 1000
max_connections = 1000
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

# Per level: conversations/s, p50 ms, p99 ms, server CPU ms per conversation (NaN: CPU not known).
Figures = dict[int, tuple[float, float, float, float]]


@dataclass
class Side:
    """One server under load: where it listens and, when known, its process (for CPU and RSS)."""

    name: str
    port: int
    pid: int | None
    runs: list[Figures] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for(port: int, process: subprocess.Popen | None = None) -> None:
    for _ in range(300):
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server on port {port} exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


def start_ours(config: Path, data_dir: Path, port: int, *, dns: bool = False,
               wrapper: tuple[str, ...] = ()) -> subprocess.Popen:
    """`interceptor serve` as a user runs it, listening on 127.0.0.1:`port` (its household page on
    another free loopback port); its DNS responder only when asked; under `wrapper` (e.g. strace)
    when given, then the process returned is the wrapper."""
    process = subprocess.Popen(
        [*wrapper, str(Path(sys.executable).parent / "interceptor"), "serve", "--config", str(config),
         "--data-dir", str(data_dir), "--http-listen", f"127.0.0.1:{port}", "--web-listen",
         f"127.0.0.1:{free_port()}", *(() if dns else ("--no-dns",))],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for(port, process)
    return process


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def listener_pid(port: int) -> int | None:
    """The process listening on 127.0.0.1:`port` (found through its socket's inode), if it is ours to see."""
    inodes = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == port:
            inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def pin_cores(*server_pids: int | None) -> None:
    """The servers on one core, the simulated scales on the other, so that neither measures the
    scheduler moving the other around; a no-op on a machine with a single core. A server's threads
    (Node's workers, our journal writer) follow it."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return
    for pid in filter(None, server_pids):
        for task in Path(f"/proc/{pid}/task").iterdir():
            os.sched_setaffinity(int(task.name), {cores[-1]})
    os.sched_setaffinity(0, set(cores[:-1]))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU the process has used: a figure the load generator's own CPU use cannot blur."""
    if pid is None:
        return float("nan")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
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


def measure(side: Side, total: int, first_meastime: int, levels: tuple[int, ...] = LEVELS) -> Figures:
    """Per level: conversations/s, p50 ms, p99 ms, server CPU ms per conversation."""
    results = {}
    run(run_level(side.port, 5, 50, first_meastime - 1_000_000))  # warm-up, not counted
    for scales in levels:
        cpu_before = cpu_seconds(side.pid)
        seconds, latencies = run(run_level(side.port, scales, total, first_meastime + scales * 100_000))
        cpu_ms = (cpu_seconds(side.pid) - cpu_before) * 1000 / len(latencies)
        results[scales] = (len(latencies) / seconds, statistics.median(latencies), percentile(latencies, 0.99), cpu_ms)
    return results


def median_of(runs: list[Figures]) -> Figures:
    """Each figure of each level: its median over the runs (this VM is noisy; one run can be an outlier)."""
    return {scales: tuple(statistics.median(run[scales][index] for run in runs) for index in range(4))  # type: ignore[misc]
            for scales in runs[0]}


def start_peer(arguments: argparse.Namespace, scratch: Path) -> tuple[subprocess.Popen | None, Side | None]:
    """The peer from --peer-command (started here, on a free port) or --peer-url (already running)."""
    if arguments.peer_command:
        port = free_port()
        peer_dir = scratch / "peer"
        peer_dir.mkdir()
        argv = [part.format(port=port, dir=peer_dir) for part in shlex.split(arguments.peer_command)]
        process = subprocess.Popen(argv, cwd=peer_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(port, process)
        return process, Side("peer", port, process.pid)
    if arguments.peer_url:
        port = loopback_port(arguments.peer_url)
        wait_for(port)
        return None, Side("peer", port, listener_pid(port))
    return None, None


def loopback_port(url: str) -> int:
    address = urlsplit(url)
    if address.hostname not in ("127.0.0.1", "localhost") or address.port is None:
        raise SystemExit("conversation.py: --peer-url must be http://127.0.0.1:PORT (loopback only)")
    return address.port


def row(figures: tuple[float, float, float, float]) -> str:
    rate, p50, p99, cpu = figures
    return f"{rate:>7.0f} {p50:>7.2f} {p99:>7.2f} {cpu:>7.2f}"


def report(sides: list[Side], arguments: argparse.Namespace, idle_rss: dict[str, float], loaded_rss: float) -> None:
    medians = {side.name: median_of(side.runs) for side in sides}
    ours = medians["ours"]
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]};"
          f" {arguments.conversations_per_level} conversations per level;"
          f" medians of {arguments.repeats} alternating runs")
    if "peer" not in medians:
        print("no peer given (--peer-command or --peer-url): comparing with the bare handler only")
    print("scales | " + " | ".join(f"{side.name + ' conv/s':>12}  p50 ms  p99 ms  CPU ms" for side in sides))
    for scales in ours:
        print(f"{scales:>6} | " + " | ".join(f"{'':>5}{row(medians[side.name][scales])}" for side in sides))
    others = [name for name in ("peer", "bare") if name in medians]
    print("scales | " + " | ".join(f"ours/{name} conv/s  p99  CPU" for name in others))
    for scales in ours:
        cells = []
        for name in others:
            other = medians[name][scales]
            cells.append(f"{ours[scales][0] / other[0]:>17.2f} {ours[scales][2] / other[2]:>4.2f}"
                         f" {ours[scales][3] / other[3]:>4.2f}")
        print(f"{scales:>6} | " + " | ".join(cells))
    print("idle RSS: " + ", ".join(f"{name} {value:.1f} MB" for name, value in idle_rss.items())
          + f"; interceptor serve after load {loaded_rss:.1f} MB")
    print(f"p99 at 10 scales in each run (ours): {', '.join(f'{run[10][2]:.2f}' for run in sides[0].runs)} ms")
    p99, rss = ours[10][2], idle_rss["ours"]
    verdict = [f"p99 at 10 scales {p99:.2f} ms (<= {FLOOR_P99_MS:g}: {ok(p99 <= FLOOR_P99_MS)})",
               f"idle RSS {rss:.1f} MB (<= {FLOOR_IDLE_RSS_MB:g}: {ok(rss <= FLOOR_IDLE_RSS_MB)})"]
    name, floor = ("peer", FLOOR_PEER_RATIO) if "peer" in medians else ("bare", FLOOR_BARE_RATIO)
    for scales in (10, 50):
        ratio = ours[scales][0] / medians[name][scales][0]
        verdict.append(f"conv/s at {scales} scales {ratio:.2f}x {name} (>= {floor:g}: {ok(ratio >= floor)})")
    print("floors: " + "; ".join(verdict))


def ok(met: bool) -> str:
    return "ok" if met else "MISSED"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations-per-level", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each side, alternating; medians reported")
    peer = parser.add_mutually_exclusive_group()
    peer.add_argument("--peer-command", metavar="COMMAND",
                      help="runs the peer server; {port} and {dir} (a scratch directory) are filled in")
    peer.add_argument("--peer-url", metavar="URL", help="a peer already running on http://127.0.0.1:PORT")
    arguments = parser.parse_args()
    if arguments.peer_url:
        loopback_port(arguments.peer_url)  # refused before anything starts
    total = arguments.conversations_per_level
    first_meastime = int(time.time()) - 200_000_000  # about six years ago: distinct, plausible weigh-in times

    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        config = scratch / "interceptor.toml"
        config.write_text(CONFIG)
        processes = []
        try:
            ours_port, bare_port = free_port(), free_port()
            ours = start_ours(config, scratch / "data", ours_port)
            processes.append(ours)
            bare = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(bare_port)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes.append(bare)
            wait_for(bare_port, bare)
            peer_process, peer_side = start_peer(arguments, scratch)
            processes += [peer_process] if peer_process else []
            sides = [Side("ours", ours_port, ours.pid), *([peer_side] if peer_side else []),
                     Side("bare", bare_port, bare.pid)]
            pin_cores(*(side.pid for side in sides))
            time.sleep(1.0)
            idle_rss = {side.name: rss_mb(side.pid) for side in sides}
            for repeat in range(arguments.repeats):
                # Rotate who goes first, so that no side always meets a machine fresh from idling.
                for side in sides[repeat % len(sides):] + sides[:repeat % len(sides)]:
                    side.runs.append(measure(side, total, first_meastime + repeat * 10_000_000))
            loaded_rss = rss_mb(sides[0].pid)
        finally:
            for process in processes:
                stop(process)
    report(sides, arguments, idle_rss, loaded_rss)


if __name__ == "__main__":
    main()
