"""DNS responder benchmark: dnsperf against `interceptor dns` and Debian's dnsmasq, in the same run.

Usage (needs the Debian packages dnsperf and dnsmasq; loopback only):

    .venv/bin/python bench/dns/run.py [--seconds 5] [--repeats 3]

For each job, (a) an intercepted name, (b) forwarded names served from the cache, (c) forwarded cache
misses, it measures the maximum qps (dnsperf with 100 queries outstanding) and p50/p99 latency at a
steady 200 qps (each the median over the repeats), for our responder and for dnsmasq doing the same job against the
same upstream (a third, local dnsmasq that answers every name itself), and prints each as a ratio.
Then it loads the responder at full speed while its only upstream is silent and samples its RSS.
Ratios are the point: these machines are noisy, the ratio to a baseline measured minutes apart is not.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FLOOR_QPS = 10_000
CEILING_P99_MS = 1.0
RSS_GROWTH_LIMIT_MB = 20.0


def free_port() -> int:
    """A loopback port free for both UDP and TCP (dnsmasq needs a number up front)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no port free for both UDP and TCP on 127.0.0.1")


def wait_udp(port: int, name: str = "ready.test") -> None:
    """Until the server on `port` answers a query (any rcode)."""
    query = b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + b"".join(
        bytes([len(label)]) + label.encode() for label in name.split(".")
    ) + b"\x00\x00\x01\x00\x01"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        for _ in range(100):
            sock.sendto(query, ("127.0.0.1", port))
            with contextlib.suppress(OSError):
                sock.recvfrom(4096)
                return
    raise RuntimeError(f"no DNS server answered on port {port}")


@contextlib.contextmanager
def process(argv: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as sink:
        child = subprocess.Popen(argv, stdout=sink, stderr=sink)
    try:
        wait_udp(port)
        yield child
    finally:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def dnsmasq(workdir: Path, name: str, lines: str) -> tuple[list[str], int]:
    port = free_port()
    conf = workdir / f"{name}.conf"
    conf.write_text(
        f"port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\nuser=\n"
        f"pid-file=\n{lines}\n"
    )
    return [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground", f"--conf-file={conf}"], port


def responder(workdir: Path, name: str, upstream_port: int, cache_size: int) -> tuple[list[str], int]:
    port = free_port()
    conf = workdir / f"{name}.toml"
    conf.write_text(
        f'[dns]\nlisten = ["127.0.0.1:{port}"]\nupstreams = ["127.0.0.1:{upstream_port}"]\n'
        f"rate_limit = 0\ncache_size = {cache_size}\n"
        '[[dns.intercept]]\nname = "scalews.withings.net"\naddress = "127.0.0.10"\n'
    )
    return [sys.executable, "-m", "interceptor.dns", "--config", str(conf)], port


@dataclass
class Figures:
    qps: float
    p50_ms: float
    p99_ms: float


def dnsperf(port: int, queries: Path, seconds: int, extra: list[str]) -> str:
    argv = ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds), "-t", "5", *extra]
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def measure(port: int, queries: Path, seconds: int, repeats: int) -> Figures:
    rates = []
    for _ in range(repeats):
        output = dnsperf(port, queries, seconds, ["-T", "1", "-c", "1", "-q", "100"])
        rates.append(float(re.search(r"Queries per second:\s+([\d.]+)", output).group(1)))  # type: ignore[union-attr]
    p50s, p99s = [], []
    for _ in range(repeats):
        output = dnsperf(port, queries, seconds, ["-T", "1", "-c", "1", "-q", "100", "-Q", "200", "-v"])
        latencies = [float(value) * 1000 for value in re.findall(r"^> \S+ \S+ \S+ ([\d.]+)$", output, re.MULTILINE)]
        cuts = statistics.quantiles(latencies, n=100)
        p50s.append(cuts[49])
        p99s.append(cuts[98])
    return Figures(statistics.median(rates), statistics.median(p50s), statistics.median(p99s))


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def silent_upstream_memory(workdir: Path, seconds: int) -> tuple[float, float, float, str]:
    """RSS of the responder before, at peak and at the end of full load against a silent upstream."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # receives, never answers
        argv, port = responder(workdir, "silent", silent.getsockname()[1], 10_000)
        queries = workdir / "silent.txt"
        queries.write_text("".join(f"n{index}.silent.test A\n" for index in range(100_000)))
        with process(argv, port, workdir / "silent.log") as child:
            wait_udp(port, "scalews.withings.net")
            before = rss_mb(child.pid)
            load = subprocess.Popen(
                ["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
                 "-t", "3", "-q", "500"],
                stdout=subprocess.PIPE, text=True,
            )
            peak = before
            while load.poll() is None:
                peak = max(peak, rss_mb(child.pid))
                time.sleep(0.2)
            after = rss_mb(child.pid)
            output = load.communicate()[0]
    codes = re.search(r"Response codes:\s+(.*)", output)
    return before, peak, after, codes.group(1) if codes else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=5, help="length of each dnsperf run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per job and measure (median reported)")
    args = parser.parse_args()
    for tool in ("dnsperf", "dnsmasq"):
        if not (shutil.which(tool) or Path(f"/usr/sbin/{tool}").exists()):
            print(f"{tool} is missing: apt-get install -y dnsperf dnsmasq", file=sys.stderr)
            return 2
    os.chdir(ROOT)
    results: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp, contextlib.ExitStack() as stack:
        workdir = Path(tmp)
        upstream_argv, upstream_port = dnsmasq(workdir, "upstream", "address=/#/127.0.0.20\nlocal-ttl=3600")
        stack.enter_context(process(upstream_argv, upstream_port, workdir / "upstream.log"))
        override = "address=/scalews.withings.net/127.0.0.10\nlocal=/scalews.withings.net/"
        forward = f"server=127.0.0.1#{upstream_port}"
        servers = {
            ("dnsmasq", "cache"): dnsmasq(workdir, "dnsmasq-cache", f"{override}\n{forward}\ncache-size=10000"),
            ("dnsmasq", "nocache"): dnsmasq(workdir, "dnsmasq-nocache", f"{override}\n{forward}\ncache-size=0"),
            ("interceptor", "cache"): responder(workdir, "interceptor-cache", upstream_port, 10_000),
            ("interceptor", "nocache"): responder(workdir, "interceptor-nocache", upstream_port, 0),
        }
        ports = {}
        for key, (argv, port) in servers.items():
            stack.enter_context(process(argv, port, workdir / f"{key[0]}-{key[1]}.log"))
            ports[key] = port
        files = {
            "intercepted": ("cache", "scalews.withings.net A\n"),
            "cached": ("cache", "".join(f"name{index}.cached.test A\n" for index in range(100))),
            "cache miss": ("nocache", "".join(f"name{index}.miss.test A\n" for index in range(1000))),
        }
        for job, (variant, text) in files.items():
            queries = workdir / f"{job.replace(' ', '-')}.txt"
            queries.write_text(text)
            for server in ("dnsmasq", "interceptor"):
                port = ports[(server, variant)]
                dnsperf(port, queries, 1, ["-q", "20"])  # warm: fill the caches, first-use costs
                results.setdefault(job, {})[server] = measure(port, queries, args.seconds, args.repeats)
        before, peak, after, codes = silent_upstream_memory(workdir, args.seconds * 2)

    print(f"{'job':<12} {'interceptor qps':>16} {'dnsmasq qps':>12} {'ratio':>6}   "
          f"{'p50/p99 ms @200qps':>20} {'dnsmasq p50/p99':>16}")
    failures = []
    for job, pair in results.items():
        ours, theirs = pair["interceptor"], pair["dnsmasq"]
        print(f"{job:<12} {ours.qps:>16,.0f} {theirs.qps:>12,.0f} {ours.qps / theirs.qps:>6.2f}   "
              f"{ours.p50_ms:>9.3f} / {ours.p99_ms:.3f} {theirs.p50_ms:>8.3f} / {theirs.p99_ms:.3f}")
        if job != "cache miss" and ours.qps < FLOOR_QPS:
            failures.append(f"{job}: {ours.qps:,.0f} qps is below the floor of {FLOOR_QPS:,}")
        if ours.p99_ms > CEILING_P99_MS:
            failures.append(f"{job}: p99 {ours.p99_ms:.3f} ms at 200 qps is above {CEILING_P99_MS} ms")
    print(f"silent upstream, full load {args.seconds * 2} s: RSS {before:.1f} MB before, {peak:.1f} MB peak, "
          f"{after:.1f} MB after (growth {peak - before:.1f} MB); responses {codes}")
    if peak - before > RSS_GROWTH_LIMIT_MB:
        failures.append(f"RSS grew {peak - before:.1f} MB under a silent upstream (limit {RSS_GROWTH_LIMIT_MB})")
    for failure in failures:
        print(f"FLOOR MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
