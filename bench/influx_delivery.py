"""InfluxDB delivery: journal → influxd throughput against a bare `/write`, and the delay a user sees.

1. Throughput. A journal holding N weigh-ins is drained by the real outbox `Delivery` into Debian's
   influxd on loopback; in the same run the same line protocol, rendered beforehand, is posted
   straight to `/write` in batches of the same size. The ratio is what reading the journal,
   rendering and bookkeeping cost. Floor: ratio >= 0.8.
2. Delay. `interceptor serve` with the InfluxDB sink takes a steady stream of weigh-ins from
   simulated scales; a poller counts the points in InfluxDB every 20 ms. Since delivery is in order,
   weigh-in k is queryable once the count reaches k: its delay is that moment minus the moment the
   scale got `status 0`. Floor: p99 <= 2 s.

Loopback only; every loop is bounded.

    .venv/bin/python bench/influx_delivery.py [--points 20000] [--rate 20] [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from interceptor.config import InfluxSettings  # noqa: E402
from interceptor.model import Reading  # noqa: E402
from interceptor.store.delivery import INFLUX, Delivery  # noqa: E402
from interceptor.store.influx import InfluxSender, V1Writer  # noqa: E402
from interceptor.store.journal import Journal, NewMeasurement, reader_of  # noqa: E402
from interceptor.store.lineprotocol import LineProtocol, measurement_line  # noqa: E402
from interceptor.withings.scale import ScaleIdentity, weigh_in  # noqa: E402
from tests.conftest import INFLUXD_CONFIG, Influx, free_port, start_server  # noqa: E402

BATCH = 500


def start_influxd(root: Path) -> Influx:
    port = free_port()
    config = root / "influxdb.conf"
    config.write_text(INFLUXD_CONFIG.format(root=root, http_port=port, rpc_port=free_port()))
    server = Influx(None, f"http://127.0.0.1:{port}", root, config, root / "influxd.log")  # type: ignore[arg-type]
    server.start()
    return server


def fill_journal(path: Path, count: int) -> Journal:
    journal = Journal(path, sinks={INFLUX: LineProtocol()})
    start = datetime(2024, 1, 1, tzinfo=UTC)
    for first in range(0, count, 1000):
        journal.call(lambda tx, first=first: tx.insert([
            NewMeasurement(
                Reading(source="withings", device_id="00:24:e4:00:00:01", taken_at=start + timedelta(minutes=index),
                        received_at=start + timedelta(minutes=index), device_user_id="1",
                        values={"weight_kg": 60 + (index % 400) / 10, "heart_rate_bpm": 60.0 + index % 40}),
                "anna", {}, {},
            )
            for index in range(first, min(count, first + 1000))
        ]))
    return journal


def post_lines(url: str, database: str, lines: list[str]) -> None:
    request = urllib.request.Request(f"{url}/write?db={database}&precision=s", data="\n".join(lines).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204


def throughput(influx: Influx, scratch: Path, count: int, rounds: int = 2) -> tuple[float, float]:
    """Alternating rounds (bare, ours, ours, bare, ...) so neither side always meets a fresher influxd;
    each round writes into its own database. Returns the mean rate of each side."""
    lines: list[str] = []
    ours: list[float] = []
    bare: list[float] = []
    for round_number in range(rounds):
        path = scratch / f"journal-{round_number}.sqlite"
        journal = fill_journal(path, count)
        if not lines:
            with journal.reader() as reader:
                lines = [text for text in (measurement_line(item) for item in reader.measurements()) if text]
        order = (bare_round, ours_round) if round_number % 2 == 0 else (ours_round, bare_round)
        for side in order:
            database = f"bench_{side.__name__}_{round_number}"
            influx.query(f"CREATE DATABASE {database}")
            rate = side(influx, database, journal, lines)
            (ours if side is ours_round else bare).append(rate)
        journal.close()
        assert journal_empty(path), "the outbox did not drain"
    return statistics.mean(ours), statistics.mean(bare)


def bare_round(influx: Influx, database: str, journal: Journal, lines: list[str]) -> float:
    started = time.perf_counter()
    for first in range(0, len(lines), BATCH):
        post_lines(influx.url, database, lines[first:first + BATCH])
    return len(lines) / (time.perf_counter() - started)


def ours_round(influx: Influx, database: str, journal: Journal, lines: list[str]) -> float:
    async def drain() -> int:
        writer = V1Writer(InfluxSettings(url=influx.url, database=database, batch_size=BATCH))
        try:
            return await Delivery(journal, InfluxSender(writer), batch_size=BATCH).drain()
        finally:
            await writer.close()

    started = time.perf_counter()
    settled = asyncio.run(drain())
    return settled / (time.perf_counter() - started)


def journal_empty(path: Path) -> bool:
    with reader_of(path) as reader:
        return reader.outbox_size(INFLUX) == 0


def count_points(influx: Influx, database: str) -> int:
    result = influx.query('SELECT count("weight_kg") FROM "body"', database)["results"][0]
    series = result.get("series")
    return int(series[0]["values"][0][1]) if series else 0


async def delay(influx: Influx, scratch: Path, rate: float, seconds: float) -> list[float]:
    influx.query("CREATE DATABASE bench_delay")
    config = scratch / "interceptor.toml"
    config.write_text(f'[influx]\nurl = "{influx.url}"\ndatabase = "bench_delay"\n')
    served = start_server(config, scratch / "delay-data")
    acked: list[float] = []
    seen: list[tuple[float, int]] = []
    total = int(rate * seconds)
    finished = asyncio.Event()

    async def poll() -> None:
        loop = asyncio.get_running_loop()
        deadline = time.monotonic() + seconds + 30
        while time.monotonic() < deadline:
            count = await loop.run_in_executor(None, count_points, influx, "bench_delay")
            seen.append((time.monotonic(), count))
            if finished.is_set() and count >= total:
                return
            await asyncio.sleep(0.02)

    async def load() -> None:
        first = int(time.time()) - 10 * total
        for index in range(total):
            started = time.monotonic()
            conversation = await weigh_in("127.0.0.1", served.port, scale=ScaleIdentity(), meastime=first + index,
                                          weight_g=70000 + index)
            assert conversation.response(2).json()["status"] == 0
            acked.append(time.monotonic())
            await asyncio.sleep(max(0.0, 1 / rate - (time.monotonic() - started)))
        finished.set()

    try:
        await asyncio.gather(poll(), load())
    finally:
        served.kill()
    delays = []
    for index, ack in enumerate(acked, start=1):
        visible = next((moment for moment, count in seen if count >= index and moment >= ack), None)
        if visible is None:
            raise RuntimeError(f"weigh-in {index} never became queryable")
        delays.append(visible - ack)
    return delays


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=4, help="alternating throughput rounds")
    parser.add_argument("--rate", type=float, default=20.0, help="weigh-ins per second for the delay test")
    parser.add_argument("--seconds", type=float, default=15.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch_text:
        scratch = Path(scratch_text)
        (scratch / "influxd").mkdir()
        influx = start_influxd(scratch / "influxd")
        try:
            ours_rate, bare_rate = throughput(influx, scratch, arguments.points, arguments.rounds)
            delays = asyncio.run(delay(influx, scratch, arguments.rate, arguments.seconds))
        finally:
            influx.stop()
    ordered = sorted(delays)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    print(f"throughput: outbox -> influxd {ours_rate:,.0f} points/s, bare POST /write {bare_rate:,.0f} points/s,"
          f" ratio {ours_rate / bare_rate:.2f} (floor 0.8: {'ok' if ours_rate / bare_rate >= 0.8 else 'MISSED'});"
          f" {arguments.points} points per round, {arguments.rounds} alternating rounds, batches of {BATCH}")
    print(f"delay status 0 -> queryable: {len(delays)} weigh-ins at {arguments.rate:g}/s, p50"
          f" {statistics.median(delays) * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms, max {ordered[-1] * 1000:.0f} ms"
          f" (floor p99 2 s: {'ok' if p99 <= 2 else 'MISSED'}; poll resolution 20 ms)")


if __name__ == "__main__":
    main()
