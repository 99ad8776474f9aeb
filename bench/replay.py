"""Replay throughput of a large capture, next to reading the same file with dpkt alone, and peak
memory at two capture sizes.

A capture of N WBS01 conversations (once, session new, measure store, session delete; 22 frames each,
distinct ports and weigh-in times) is generated with `interceptor.capture.synth`. In the same run,
each measurement runs in its own process (so its peak RSS is its own):

- `dpkt`: the baseline: dpkt's pcapng reader and its Ethernet/IP/TCP parsing over every frame;
- `parse`: our reader, TCP reassembly and HTTP parsing into conversations (no server);
- `replay`: `interceptor replay` in-process: every request sent over loopback TCP to the server,
  every weigh-in committed to a temporary journal with fsync, every reply compared.

Exchanges per second are given for all three (dpkt's is the file's exchanges over its reading time),
with ratios to the baseline; peak RSS is given at N/10 and N conversations, to show that memory does
not grow with the file. Everything stays on 127.0.0.1; every loop is bounded by the file.

    .venv/bin/python bench/replay.py [--conversations 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote_plus

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interceptor.capture.synth import PcapngWriter, TcpSynthesiser  # noqa: E402
from interceptor.withings.scale import request_bytes  # noqa: E402

HOUSEHOLD = ROOT / "captures" / "household.toml"
START = 1_700_000_000.0  # 2023-11-14: a plausible capture date for the server's meastime checks
MAC = "00:24:e4:ff:fc:01"
USER = 101010  # kim in captures/household.toml
EXCHANGES_PER_CONVERSATION = 4


def _reply(body: bytes, *, chunked: bool = False) -> bytes:
    if chunked:
        return (b"HTTP/1.1 200 OK\r\nServer: Apache\r\nTransfer-Encoding: chunked\r\nContent-Type: text/plain\r\n\r\n"
                + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    return (b"HTTP/1.1 200 OK\r\nServer: Apache\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nContent-Type: text/plain\r\n\r\n" + body)


def generate(path: Path, conversations: int) -> None:
    """Written conversation by conversation: the generator holds one conversation's frames at a time."""
    with path.open("wb") as stream:
        writer = PcapngWriter(stream, TcpSynthesiser(("10.0.0.2", 1), ("10.0.0.1", 80)).linktype)
        for number in range(conversations):
            at = START + number * 60.0
            session = f"{1000 + number % 9000}-{number:08x}-0000abcd"
            synth = TcpSynthesiser((f"192.168.{1 + number // 50000}.20", 10000 + number % 50000), ("10.0.0.1", 80))
            session_body = json.dumps({"status": 0, "body": {
                "sessionid": session, "sp": {"users": []},
                "ind": {"lg": "en_GB", "imt": 1, "stp": 1, "f": 0, "g": 98066}, "syp": {"utc": int(at)},
                "ctp": {"goff": 3600, "dst": 0, "ngoff": 0}}}, separators=(",", ":")).encode()
            measures = quote_plus(json.dumps({"measures": [{"value": 60000 + number % 20000, "type": 1, "unit": -3}]},
                                             separators=(",", ":")))
            steps = [
                ("/cgi-bin/once", b"action=get", _reply(b'{"status":0,"body":{"once":"00d0177b-1360777c"}}')),
                ("/cgi-bin/session", f"action=new&auth={MAC}&hash={'0' * 32}&mfgid=262151&currentfw=200"
                 "&batterylvl=69&duration=30&zreboot=1".encode(), _reply(session_body, chunked=True)),
                ("/cgi-bin/measure", f"action=store&sessionid={session}&macaddress={MAC}&userid={USER}"
                 f"&meastime={int(at) - 20}&devtype=1&attribstatus=0&measures="
                 f"{measures}".encode(),
                 _reply(b'{"status":0,"body":{"updatetime":%d}}' % int(at))),
                ("/cgi-bin/session", f"action=delete&sessionid={session}".encode(), _reply(b'{"status":0}')),
            ]
            frames = synth.handshake(at)
            for index, (target, body, reply) in enumerate(steps):
                frames += synth.send(synth.client, request_bytes(target, body), at + 0.1 + index * 0.1)
                frames += synth.send(synth.server, reply, at + 0.15 + index * 0.1)
            writer.write(frames + synth.close(at + 1.0))


def child_dpkt(path: Path) -> dict[str, float]:
    import dpkt

    frames = 0
    with path.open("rb") as stream:
        for _, data in dpkt.pcapng.Reader(stream):
            packet = dpkt.ethernet.Ethernet(data)
            if isinstance(packet.data, dpkt.ip.IP) and isinstance(packet.data.data, dpkt.tcp.TCP):
                frames += 1
    return {"frames": frames}


def child_parse(path: Path) -> dict[str, float]:
    from interceptor.capture.conversations import read_conversations

    conversations = exchanges = 0
    for conversation in read_conversations(path):
        conversations += 1
        exchanges += len(conversation.exchanges)
    return {"conversations": conversations, "exchanges": exchanges}


def child_replay(path: Path) -> dict[str, float]:
    import logging

    from interceptor.capture.replay import Replayer, replay_files, target
    from interceptor.config import load_config

    logging.disable(logging.INFO)  # the server logs every request; that is not what is measured

    async def run() -> dict[str, float]:
        async with target(load_config(HOUSEHOLD), against=None, ingest=False, clock_mode="capture") as where:
            replayer = Replayer(where.host, where.port, clock=where.clock, watch=where.watch)
            summary = await replay_files([path], replayer, on_result=lambda result: None)
        return {"conversations": summary.conversations, "exchanges": summary.exchanges,
                "incompatible": summary.incompatible, "measurements": summary.measurements}

    try:
        import uvloop
    except ImportError:
        return asyncio.run(run())
    return uvloop.run(run())


CHILDREN = {"dpkt": child_dpkt, "parse": child_parse, "replay": child_replay}


def measure(kind: str, path: Path) -> dict[str, float]:
    """Runs one measurement in a fresh process and returns its figures, seconds and peak RSS (MiB)."""
    output = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                            check=True, timeout=3600)
    return json.loads(output.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--child", choices=sorted(CHILDREN))
    parser.add_argument("file", nargs="?", type=Path)
    arguments = parser.parse_args()
    if arguments.child:
        began = time.perf_counter()
        figures = CHILDREN[arguments.child](arguments.file)
        figures["seconds"] = time.perf_counter() - began
        figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return

    large = arguments.conversations
    small = max(1, large // 10)
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as scratch:
        files = {count: Path(scratch) / f"{count}.pcapng" for count in (small, large)}
        for count, path in files.items():
            began = time.perf_counter()
            generate(path, count)
            print(f"generated {count} conversations: {path.stat().st_size / 2**20:.1f} MiB "
                  f"in {time.perf_counter() - began:.1f} s", file=sys.stderr)
        results = {(kind, count): measure(kind, path) for count, path in files.items()
                   for kind in ("dpkt", "parse", "replay")}

    exchanges = large * EXCHANGES_PER_CONVERSATION
    baseline = exchanges / results[("dpkt", large)]["seconds"]
    print(f"\n{large} conversations, {exchanges} exchanges, {int(results[('dpkt', large)]['frames'])} frames")
    print(f"{'job':<44} {'seconds':>8} {'exchanges/s':>12} {'ratio':>7} {'RSS @' + str(small):>10} "
          f"{'RSS @' + str(large):>10}")
    for kind, label in (("dpkt", "dpkt alone: read + decode every frame"),
                        ("parse", "our reader + reassembly + HTTP"),
                        ("replay", "replay in-process (TCP, journal fsync)")):
        figures = results[(kind, large)]
        rate = exchanges / figures["seconds"]
        print(f"{label:<44} {figures['seconds']:>8.2f} {rate:>12,.0f} {rate / baseline:>7.3f} "
              f"{results[(kind, small)]['peak_rss_mib']:>8.1f} MiB {figures['peak_rss_mib']:>6.1f} MiB")
    replayed = results[("replay", large)]
    print(f"replay: {int(replayed['exchanges'])} exchanges, {int(replayed['measurements'])} measurements stored, "
          f"{int(replayed['incompatible'])} incompatible replies")


if __name__ == "__main__":
    main()
