"""Costs as history grows: the CLI's reads and rewrites, and the conversation rate, at 10k to 1M weigh-ins.

For each size, a journal is seeded with a household's history (four people over six years; a
Withings WS-50 and a Xiaomi Mi Body Composition Scale 2 in turns; composition metrics; one row of
device history per WS-50 session), written by the project's own pipeline in big transactions.
Seeding is not measured. Then each command runs as a user runs it, in a fresh process, timed, with
its peak RSS, under an address-space limit so that a command that would eat the machine
fails instead (GNU time reports the peak; prlimit sets the cap):

- `sqlite3 -json` of the same rows and columns `measurements list --format json` prints (the
  baseline: what reading the journal costs at all), then `measurements list` as json, table and csv;
- `recompute --user anna` (a quarter of the weigh-ins, each revised);
- `sync influx` into Debian's influxd on loopback (every weigh-in and device report);
- the conversation rate of `interceptor serve` on that journal (10 simulated scales), next to the
  same load on an empty journal in the same run.

Issue 10's floors: `measurements list --format json` at 100,000 and 1,000,000 weigh-ins within 3x the
time of `sqlite3 -json` and 100 MB peak; the conversation rate flat from 10k to 1M. Loopback only;
every command has a timeout. Needs the Debian packages sqlite3, influxdb and time.

    .venv/bin/python bench/growth.py [--sizes 10000,100000,1000000] [--seed-dir DIR]
        [--memory-limit-mb 8192] [--timeout 3600] [--conversations 1000] [--rate-repeats 5]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.conversation import free_port, percentile, pin_cores, run, run_level, start_ours, stop  # noqa: E402
from bench.influx_delivery import start_influxd  # noqa: E402
from interceptor.ble.miscale import MODEL_V2  # noqa: E402
from interceptor.config import load_config  # noqa: E402
from interceptor.model import Reading  # noqa: E402
from interceptor.pipeline import Pipeline  # noqa: E402
from interceptor.store.journal import Journal  # noqa: E402

SIZES = (10_000, 100_000, 1_000_000)
FLOOR_TIME_RATIO = 3.0
FLOOR_PEAK_MB = 100.0
# "Flat as the journal grows": within 10 % of the rate on an empty journal, measured alongside.
FLOOR_RATE_RATIO = 0.9
BATCH = 20_000
YEARS = 6
WS50 = "00:24:e4:6a:10:01"
MI_SCALE = "5C:CA:D3:41:7E:02"
# slug, sex, birth date, height, Withings user id, usual weight (kg): far enough apart that the Mi
# scale's weigh-ins (no user id) are attributed by weight (and weight range), as in a real household.
PEOPLE = (
    ("anna", "female", "1986-04-12", 168, 1001, 62.0),
    ("ben", "male", "1984-09-30", 182, 1002, 84.0),
    ("cleo", "female", "1998-02-03", 160, 1003, 51.0),
    ("dan", "male", "1955-06-21", 175, 1004, 96.0),
)
HOUSEHOLD = '[household]\ntimezone = "Europe/Paris"\n' + "".join(
    f'[[users]]\nslug = "{slug}"\nname = "{slug.title()}"\nshort_name = "{slug[:3].upper()}"\nsex = "{sex}"\n'
    f'birth_date = "{born}"\nheight_cm = {height}\nwithings_user_id = {user_id}\n'
    f"weight_range_kg = [{usual - 5}, {usual + 5}]\n"
    for slug, sex, born, height, user_id, usual in PEOPLE
) + f'[devices."{WS50.upper()}"]\nmodel = "WS-50"\n' + (
    # Ten scales at once from one loopback address, which no household does: limits far above the load,
    # so the listener's guard (connection table, token bucket) still runs on every request.
    "[http]\nrate_limit = 1e9\nrate_burst = 1000000\nmax_connections_per_client = 1000\nmax_connections = 1000\n"
)
# The same columns and rows as `measurements list --format json` (kind body, oldest first).
BASELINE_SQL = (
    "SELECT id, kind, strftime('%Y-%m-%dT%H:%M:%SZ', taken_at, 'unixepoch') AS taken_at,"
    " strftime('%Y-%m-%dT%H:%M:%SZ', received_at, 'unixepoch') AS received_at, source, device_id,"
    " device_model, user, assignment AS assigned_by, readings, metrics, refusals, raw"
    " FROM measurements WHERE kind = 'body' ORDER BY measurements.taken_at, id"
)


def weigh_ins(count: int, end: datetime) -> Iterator[tuple[Reading, float | None]]:
    """`count` weigh-ins evenly spread over YEARS before `end`: person by turns, scale every other
    round; weights drift slowly and vary day to day. With each WS-50 weigh-in, the battery level its
    session reported (the device-history row); None for the Mi scale, which reports none."""
    step = YEARS * 365.25 * 86400 / count
    for index in range(count):
        _, _, _, _, user_id, usual = PEOPLE[index % 4]
        taken_at = end - timedelta(seconds=round((count - index) * step))
        years = index / count * YEARS
        weight = round(usual + 2.0 * math.sin(years * 1.3 + index % 4) + 0.4 * math.sin(index * 0.7), 2)
        if (index // 4) % 2 == 0:
            battery = float(100 - round(years * 30) % 95)
            fat_pct = 18.0 + (usual - 50) / 4 + math.sin(index * 0.3)
            fat_kg = weight * fat_pct / 100
            yield Reading(
                source="withings", device_id=WS50, device_model="WS-50", taken_at=taken_at,
                received_at=taken_at + timedelta(seconds=4), device_user_id=str(user_id),
                values={"weight_kg": weight, "heart_rate_bpm": 58.0 + index % 17, "battery_pct": battery},
                vendor_metrics={"body_fat_pct": round(fat_pct, 2), "fat_mass_kg": round(fat_kg, 2),
                                "fat_free_mass_kg": round(weight - fat_kg, 2),
                                "muscle_mass_kg": round((weight - fat_kg) * 0.94, 2),
                                "bone_mass_kg": round((weight - fat_kg) * 0.05, 2),
                                "water_pct": round(55.0 - fat_pct / 4, 2)},
                raw={"withings_type_77": round(weight * (55.0 - fat_pct / 4) / 100, 2)},
            ), battery
        else:
            yield Reading(
                source="ble", device_id=MI_SCALE, device_model=MODEL_V2, taken_at=taken_at,
                received_at=taken_at + timedelta(seconds=1),
                values={"weight_kg": weight, "impedance_ohm": float(420 + (index * 7) % 160)},
            ), None


async def seed(path: Path, count: int, config_path: Path) -> None:
    """The one place that writes the journal: the pipeline decides each weigh-in (person, metrics)
    and stores BATCH of them per group commit, each WS-50 session's device report riding along as
    the server's does. Adapt only this function when the journal's write API changes."""
    journal = Journal(path)
    pipeline = Pipeline(journal, load_config(config_path))
    try:
        batch: list[Reading] = []
        for reading, battery in weigh_ins(count, datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)):
            batch.append(reading)
            if battery is not None:
                journal.write_later(lambda tx, seen=reading.received_at, level=battery: tx.record_device(
                    device_id=WS50, source="withings", seen_at=seen, model="WS-50", firmware="1171",
                    battery_pct=level), "the WS-50's session")
            if len(batch) == BATCH:
                await pipeline.ingest_many(batch)
                batch = []
        if batch:
            await pipeline.ingest_many(batch)
    finally:
        journal.close()


@dataclass
class Run:
    seconds: float
    peak_mb: float
    status: int
    error: str

    def cells(self) -> str:
        if self.status != 0:
            return f"{self.seconds:>8.2f}  {self.peak_mb:>8.1f}  FAILED ({self.status}): {self.error}"
        return f"{self.seconds:>8.2f}  {self.peak_mb:>8.1f}"


def measure(argv: list[str], limit_mb: int, timeout: float) -> Run:
    """One command in a fresh process: wall time, and peak RSS as GNU time reports it, stdout thrown
    away (both sides write all their output), address space capped at `limit_mb` by prlimit(1).
    GNU time forks the command from its own small process: Python's vfork-based spawn would hand
    the command this script's memory high-water mark (exec keeps it), and its peak would read ~55 MB."""
    with tempfile.TemporaryDirectory() as scratch:
        peak, errors = Path(scratch) / "peak", Path(scratch) / "errors"
        started = time.perf_counter()
        with errors.open("wb") as sink:
            process = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", str(peak), "prlimit",
                                        f"--as={limit_mb << 20}", "--", *argv],
                                       stdout=subprocess.DEVNULL, stderr=sink, start_new_session=True)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)  # GNU time and the command: their own group
                process.wait()
        seconds = time.perf_counter() - started
        tail = errors.read_text(errors="replace").strip().splitlines()
        kilobytes = peak.read_text().split()[-1] if peak.exists() and peak.read_text().split() else "nan"
    return Run(seconds, float(kilobytes) / 1024, process.returncode, tail[-1][:160] if tail else "")


def conversation_rate(config: Path, data_dir: Path, conversations: int) -> tuple[float, float]:
    """Conversations/s and p99 ms of 10 simulated scales against `interceptor serve` on `data_dir`."""
    port, cores = free_port(), os.sched_getaffinity(0)
    process = start_ours(config, data_dir, port)
    try:
        pin_cores(process.pid)
        now = int(time.time())
        run(run_level(port, 5, 100, now - 3_000_000))  # warm-up, not counted
        seconds, latencies = run(run_level(port, 10, conversations, now - 2_000_000))
    finally:
        stop(process)
        os.sched_setaffinity(0, cores)  # the commands measured next get every core again
    return len(latencies) / seconds, percentile(latencies, 0.99)


def interceptor(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "interceptor"), *args]


def one_size(size: int, scratch: Path, seeds: Path, arguments: argparse.Namespace) -> float:
    """Prints the figures for one size; returns the conversation rate over an empty journal's."""
    config = scratch / "interceptor.toml"
    seeded = seeds / f"journal-{size}.sqlite"
    if not seeded.exists():
        started = time.perf_counter()
        asyncio.run(seed(seeded, size, config))
        print(f"\nseeded {size:,} weigh-ins in {time.perf_counter() - started:.0f} s (not measured)")
    data = scratch / f"data-{size}"
    data.mkdir()
    shutil.copy(seeded, data / "journal.sqlite")
    journal = data / "journal.sqlite"
    with sqlite3.connect(journal) as db:
        history = db.execute("SELECT count(*) FROM device_history").fetchone()[0]
        limit = db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    megabytes = journal.stat().st_size / 2**20
    print(f"\n{size:,} weigh-ins: journal {megabytes:.0f} MB, {history:,} device-history rows"
          f" (SQLite here takes {limit:,} variables in one statement)")
    if not arguments.rate_only:
        commands(size, config, data, scratch, arguments)
    # One run each is at the mercy of this machine's other work: alternate, keep the medians.
    on_empty, on_seeded = [], []
    for _ in range(arguments.rate_repeats):
        on_empty.append(conversation_rate(config, scratch / f"empty-{size}", arguments.conversations))
        on_seeded.append(conversation_rate(config, data, arguments.conversations))
    (empty_rate, empty_p99), (rate, p99) = (median_pair(runs) for runs in (on_empty, on_seeded))
    print(f"conversations, 10 scales (median of {arguments.rate_repeats}): {rate:.0f}/s, p99 {p99:.1f} ms;"
          f" on an empty journal in the same run {empty_rate:.0f}/s, p99 {empty_p99:.1f} ms;"
          f" ratio {rate / empty_rate:.2f}")
    return rate / empty_rate


def commands(size: int, config: Path, data: Path, scratch: Path, arguments: argparse.Namespace) -> None:
    """The CLI's reads and rewrites on the seeded journal, each in its own capped process."""
    journal = data / "journal.sqlite"
    print("command                                   seconds   peak MB  time/sqlite3  memory/sqlite3")
    limits = (arguments.memory_limit_mb, arguments.timeout)
    common = ("--config", str(config), "--data-dir", str(data))
    baseline = measure(["sqlite3", "-json", str(journal), BASELINE_SQL], *limits)
    print(f"{'sqlite3 -json (baseline)':<40}  {baseline.cells()}")
    for output in ("json", "table", "csv"):
        result = measure(interceptor("measurements", "list", "--format", output, *common), *limits)
        ratios = f"  {result.seconds / baseline.seconds:>12.2f}  {result.peak_mb / baseline.peak_mb:>14.1f}"
        print(f"{'measurements list --format ' + output:<40}  {result.cells()}{ratios if not result.status else ''}")
        if output == "json" and not result.status:
            met = result.seconds <= FLOOR_TIME_RATIO * baseline.seconds and result.peak_mb <= FLOOR_PEAK_MB
            print(f"  floor (<= {FLOOR_TIME_RATIO:g}x sqlite3's time, <= {FLOOR_PEAK_MB:g} MB):"
                  f" {'ok' if met else 'MISSED'}")
    recompute = measure(interceptor("recompute", "--user", "anna", *common), *limits)
    print(f"{'recompute --user anna':<40}  {recompute.cells()}")
    influx_root = scratch / f"influxd-{size}"
    influx_root.mkdir()
    influx = start_influxd(influx_root)
    try:
        database = f"growth_{size}"
        influx.query(f"CREATE DATABASE {database}")
        influx_config = scratch / f"influx-{size}.toml"
        influx_config.write_text(config.read_text() + f'[influx]\nurl = "{influx.url}"\ndatabase = "{database}"\n')
        sync = measure(interceptor("sync", "influx", "--config", str(influx_config), "--data-dir", str(data)), *limits)
        print(f"{'sync influx':<40}  {sync.cells()}")
    finally:
        influx.stop()


def median_pair(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The median rate and the median p99 of alternating runs."""
    rates, p99s = sorted(run[0] for run in runs), sorted(run[1] for run in runs)
    return rates[len(rates) // 2], p99s[len(p99s) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="weigh-ins per journal, comma-separated")
    parser.add_argument("--seed-dir", type=Path, help="keep seeded journals here and reuse them (seed again"
                        " after a change of schema); default: a temporary directory")
    parser.add_argument("--memory-limit-mb", type=int, default=8192, help="address space allowed to each command")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each command")
    parser.add_argument("--conversations", type=int, default=1000, help="conversations per rate measurement")
    parser.add_argument("--rate-repeats", type=int, default=5,
                        help="alternating rate measurements on the empty and the seeded journal; medians")
    parser.add_argument("--rate-only", action="store_true",
                        help="measure the conversation rate only, not the commands")
    arguments = parser.parse_args()
    for program, package in (("sqlite3", "sqlite3"), ("influxd", "influxdb"), ("/usr/bin/time", "time")):
        if shutil.which(program) is None:
            raise SystemExit(f"growth.py: needs {program} (apt-get install {package})")
    sizes = [int(text) for text in arguments.sizes.split(",")]
    with tempfile.TemporaryDirectory() as scratch_name:
        scratch = Path(scratch_name)
        (scratch / "interceptor.toml").write_text(HOUSEHOLD)
        seeds = arguments.seed_dir or scratch / "seeds"
        seeds.mkdir(parents=True, exist_ok=True)
        print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}, SQLite {sqlite3.sqlite_version};"
              f" each command capped at {arguments.memory_limit_mb} MB of address space")
        ratios = {size: one_size(size, scratch, seeds, arguments) for size in sizes}
    flat = all(ratio >= FLOOR_RATE_RATIO for ratio in ratios.values())
    print("\nconversation rate over an empty journal's, same run: "
          + ", ".join(f"{size:,} {ratio:.2f}" for size, ratio in ratios.items())
          + f"; floor flat (>= {FLOOR_RATE_RATIO:g} at every size): {'ok' if flat else 'MISSED'}")


if __name__ == "__main__":
    main()
