"""DNS answers while the disk is slow: `interceptor serve` taking weigh-ins with every fsync at 300 ms.

The DNS responder shares its process with the emulated Withings cloud, so whatever the journal does
on the event loop, the household's DNS waits for. An SD card on a Raspberry Pi can take 300 ms per
fsync; strace stands in for it (`-e inject=fsync,fdatasync:delay_enter=300000`, seccomp-filtered so
only those two calls stop). Two phases, each a fresh `interceptor serve` with its DNS responder on
loopback under strace: first with the disk as it is (the baseline), then with every fsync delayed.
In each, simulated scales weigh in for a bounded time while a separate process sends queries for
the intercepted name at a steady rate and times each answer. Printed per phase: DNS p50,
p99 and max, queries unanswered after 2 s, weigh-ins per second, fsync calls per weigh-in, and
that the journal holds every weigh-in that was acknowledged. Issue 10's floor: DNS p99 <= 20 ms
while every fsync takes 300 ms. Loopback only; every loop is bounded by a count and a time.

    .venv/bin/python bench/dns_slow_disk.py [--seconds 10] [--scales 1] [--qps 200] [--fsync-delay-ms 300]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import select
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.conversation import CONFIG, free_port, percentile, pin_cores, run, start_ours, stop  # noqa: E402
from bench.dns.run import free_port as free_udp_tcp_port  # noqa: E402
from bench.dns.run import wait_udp  # noqa: E402
from interceptor.withings.scale import ScaleIdentity, weigh_in  # noqa: E402

NAME = "scalews.withings.net"
ANSWER_TIMEOUT = 2.0  # seconds after which a query counts as unanswered
FLOOR_P99_MS = 20.0
MAX_PER_SCALE = 100_000  # a bound on each scale's loop besides the clock


@dataclass
class Phase:
    name: str
    dns_ms: list[float]
    unanswered: int
    weigh_ins: int
    seconds: float
    fsyncs: int
    stored: int


def query(ident: int) -> bytes:
    """An A query for NAME with recursion desired: header, one question."""
    labels = b"".join(bytes([len(label)]) + label.encode() for label in NAME.split("."))
    return ident.to_bytes(2, "big") + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + labels + b"\x00\x00\x01\x00\x01"


def probe(port: int, qps: float, seconds: float, results: Connection) -> None:
    """In its own process, so the simulated scales cannot delay it: one query every 1/qps s on a
    fixed schedule (a late query is sent at once, not skipped), each answer timed from its own send.
    Only NOERROR answers with a record count; sends back (latencies in ms, unanswered)."""
    total = min(int(qps * seconds), 65_535)  # one query id each
    sent: dict[int, float] = {}
    answered: dict[int, float] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        sock.setblocking(False)
        start = time.perf_counter()
        deadline = start + seconds + ANSWER_TIMEOUT
        while (now := time.perf_counter()) < deadline and len(answered) < total:
            while len(sent) < total and start + len(sent) / qps <= now:
                ident = len(sent) + 1
                sent[ident] = time.perf_counter()
                sock.send(query(ident))
            next_send = start + len(sent) / qps if len(sent) < total else deadline
            readable, _, _ = select.select([sock], [], [], max(0.0, min(next_send, deadline) - now))
            while readable:
                try:
                    reply = sock.recv(4096)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                ident, received = int.from_bytes(reply[:2], "big"), time.perf_counter()
                if ident in sent and ident not in answered and reply[3] & 0x0F == 0 and reply[7] > 0:
                    answered[ident] = (received - sent[ident]) * 1000
    results.send((list(answered.values()), total - len(answered)))


async def weigh_ins(port: int, scales: int, seconds: float, first_meastime: int) -> int:
    """`scales` simulated scales, each weighing in again as soon as its last one was acknowledged,
    until `seconds` have passed; returns how many weigh-ins were acknowledged."""
    deadline = time.perf_counter() + seconds
    done = 0

    async def one_scale(index: int) -> None:
        nonlocal done
        identity = ScaleIdentity(mac=f"00:24:e4:00:{index:02x}:02")
        for round_number in range(MAX_PER_SCALE):
            if time.perf_counter() >= deadline:
                return
            conversation = await asyncio.wait_for(
                weigh_in("127.0.0.1", port, scale=identity, meastime=first_meastime + index * MAX_PER_SCALE
                         + round_number, weight_g=70_000 + round_number % 500),
                timeout=30,
            )
            if conversation.response(2).json()["status"] != 0:
                raise RuntimeError("the server refused a weigh-in")
            done += 1

    await asyncio.gather(*(one_scale(index) for index in range(scales)))
    return done


def server_pid(wrapper_pid: int) -> int:
    """The `interceptor serve` process strace started (strace's only child)."""
    children = Path(f"/proc/{wrapper_pid}/task/{wrapper_pid}/children").read_text().split()
    return int(children[0])


def fsync_calls(trace: Path, start: float, end: float) -> int:
    """fsync and fdatasync calls that strace (`-ttt`: epoch seconds after the pid) saw between two
    moments: the server's start-up creates its journal with fsyncs of its own, not counted."""
    calls = 0
    for line in trace.read_text().splitlines():
        fields = line.split(maxsplit=2)
        if len(fields) == 3 and fields[2].startswith(("fsync(", "fdatasync(")) and start <= float(fields[1]) <= end:
            calls += 1
    return calls


def stop_traced(wrapper: subprocess.Popen, serve: int) -> None:
    """Stop the server itself (strace exits with it), killing it if it lingers."""
    for signal_number in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(serve, signal_number)
        try:
            wrapper.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue
    stop(wrapper)


def phase(scratch: Path, name: str, delay_ms: int, arguments: argparse.Namespace) -> Phase:
    directory = scratch / f"fsync-delay-{delay_ms}"
    directory.mkdir()
    dns_port, http_port = free_udp_tcp_port(), free_port()
    config = directory / "interceptor.toml"
    config.write_text(
        CONFIG + f'[dns]\nlisten = ["127.0.0.1:{dns_port}"]\nupstreams = ["127.0.0.1:9"]\nrate_limit = 0\n'
        f'[[dns.intercept]]\nname = "{NAME}"\naddress = "127.0.0.1"\n'
    )
    trace = directory / "strace.txt"
    inject = ("-e", f"inject=fsync,fdatasync:delay_enter={delay_ms * 1000}") if delay_ms else ()
    wrapper = ("strace", "-f", "--seccomp-bpf", "-ttt", "-o", str(trace), "-e", "trace=fsync,fdatasync", *inject)
    process = start_ours(config, directory / "data", http_port, dns=True, wrapper=wrapper)
    serve = server_pid(process.pid)
    try:
        wait_udp(dns_port)
        pin_cores(serve)
        receiving, sending = multiprocessing.get_context("fork").Pipe(duplex=False)
        prober = multiprocessing.get_context("fork").Process(
            target=probe, args=(dns_port, arguments.qps, arguments.seconds, sending))
        prober.start()
        started = time.time()
        done = run(weigh_ins(http_port, arguments.scales, arguments.seconds, int(started) - 100_000_000))
        ended = time.time()
        latencies, unanswered = receiving.recv()
        prober.join(timeout=10)
    finally:
        stop_traced(process, serve)
    with sqlite3.connect(directory / "data" / "journal.sqlite") as journal:
        stored = journal.execute("SELECT count(*) FROM measurements").fetchone()[0]
    return Phase(name, latencies, unanswered, done, ended - started, fsync_calls(trace, started, ended), stored)


def report(phases: list[Phase], arguments: argparse.Namespace) -> None:
    print(f"{arguments.scales} simulated scale(s) weighing in back to back, {arguments.qps:g} DNS queries/s,"
          f" {arguments.seconds:g} s per phase; `interceptor serve` on one core, the load on the other")
    print("phase                       | DNS p50 ms  p99 ms  max ms  unanswered | weigh-ins/s  fsyncs/weigh-in"
          "  stored/acknowledged")
    for item in phases:
        ms = item.dns_ms or [float("nan")]
        print(f"{item.name:<27} | {statistics.median(ms):>10.2f} {percentile(ms, 0.99):>7.2f} {max(ms):>7.2f}"
              f" {item.unanswered:>11} | {item.weigh_ins / item.seconds:>11.1f}"
              f" {item.fsyncs / max(1, item.weigh_ins):>16.2f}  {item.stored:>10}/{item.weigh_ins}")
    normal, slow = phases
    slow_p99 = percentile(slow.dns_ms or [float("inf")], 0.99)
    print(f"DNS p99 slow disk / normal disk: {slow_p99 / percentile(normal.dns_ms or [float('nan')], 0.99):.1f}x")
    verdict = "ok" if slow_p99 <= FLOOR_P99_MS and slow.unanswered == 0 else "MISSED"
    print(f"floor: DNS p99 <= {FLOOR_P99_MS:g} ms while every fsync takes {arguments.fsync_delay_ms} ms,"
          f" none unanswered: {slow_p99:.2f} ms, {slow.unanswered} unanswered ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase")
    parser.add_argument("--scales", type=int, default=1,
                        help="simulated scales weighing in at once, each again as soon as it is answered")
    parser.add_argument("--qps", type=float, default=200.0, help="DNS queries per second, on a steady schedule")
    parser.add_argument("--fsync-delay-ms", type=int, default=300, help="added to every fsync in the second phase")
    arguments = parser.parse_args()
    if shutil.which("strace") is None:
        raise SystemExit("dns_slow_disk.py: needs strace (apt-get install strace)")
    with tempfile.TemporaryDirectory() as scratch:
        phases = [phase(Path(scratch), "disk as it is", 0, arguments),
                  phase(Path(scratch), f"every fsync +{arguments.fsync_delay_ms} ms", arguments.fsync_delay_ms,
                        arguments)]
    report(phases, arguments)


if __name__ == "__main__":
    main()
