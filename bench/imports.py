"""Import throughput for a 10-year, 4-person Zepp Life export, next to baselines measured in the same
run, and peak memory at 1 and 10 years.

The file is a Zepp Life BODY csv (the format that holds a whole family, told apart by height): one
weigh-in a day for each of four people over ten years, with every composition column. Each
measurement runs in its own process, so its peak RSS is its own:

- `csv`: the baseline for reading: the csv module splitting the same file's rows, nothing more;
- `read`: our reader: format detection, the full checking pass, then the second pass that maps
  every row to a person by height and builds the pipeline's `Imported` reading (what
  `interceptor import` does before the journal);
- `prepare`: `read`, then each record checked for plausibility, composed and rendered as the
  journal's row: all the reading process of `interceptor import` does (importers.worker), in one
  process;
- `sqlite`: the baseline for writing: sqlite3 inserting the same rows (time, person, weight, the
  vendor values as JSON) into a WAL database, 500 rows and one fsync per transaction;
- `import`: the whole `interceptor import` path into a fresh journal: both passes, then a second
  process reading and preparing while this one stores, 500 per durable transaction, with the merge
  checks; the floor is 20,000 rows/s here, for the whole import.

Rows per second for each (the clock runs from reading the file to the last row; module imports and
the household's config are loaded before), the median of `--repeats` alternating runs, the ratio of
ours to its baseline, and peak RSS at 1 and 10 years (flat memory: the same at both sizes, since rows
stream and chunks are bounded). For `import`, also the CPU time per row of both processes together:
two cores give 100 µs of it per row at 20,000 rows/s.

    .venv/bin/python bench/imports.py [--years 10]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOUSEHOLD = """
[household]
timezone = "Europe/Paris"
{people}
"""
# (slug, sex, birth date, height cm, weight kg): four people a Zepp file tells apart by height.
PEOPLE = [("ann", "female", "1980-03-02", 165, 61.0), ("bob", "male", "1978-11-20", 182, 84.0),
          ("cid", "male", "2006-06-01", 174, 66.0), ("dee", "female", "2009-09-09", 158, 50.0)]
HEADER = "time,weight,height,bmi,fatRate,bodyWaterRate,boneMass,metabolism,muscleRate,visceralFat\n"
START = datetime(2015, 1, 1, 6, 0, tzinfo=UTC)
# Rows per second the whole `import` step must reach.
FLOOR = 20_000


def household() -> str:
    people = "".join(f'\n[[users]]\nslug = "{slug}"\nname = "{slug}"\nshort_name = "{slug.upper()}"\n'
                     f'sex = "{sex}"\nbirth_date = "{born}"\nheight_cm = {height}\n'
                     for slug, sex, born, height, _ in PEOPLE)
    return HOUSEHOLD.format(people=people)


def generate(path: Path, years: int) -> int:
    """Written day by day; returns the number of rows."""
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("\ufeff" + HEADER)
        for day in range(round(years * 365.25)):
            for index, (_, _, _, height, weight) in enumerate(PEOPLE):
                at = START + timedelta(days=day, minutes=7 * index, seconds=day % 60)
                kg = weight + (day % 40) / 20
                out.write(f"{at:%Y-%m-%d %H:%M:%S}+0000,{kg:.2f},{height},{kg / (height / 100) ** 2:.1f},"
                          f"{18 + day % 9 / 3:.2f},{55 - day % 7 / 4:.2f},{kg * 0.04:.2f},{1200 + kg * 9:.1f},"
                          f"{kg * 0.72:.2f},{5 + day % 5}\n")
                rows += 1
    return rows


class Spent(NamedTuple):
    seconds: float
    cpu_seconds: float  # user and system time of this process, and of its children that ended


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class Stopwatch:
    """Wall clock and CPU time from its making: for the import, the reading process's CPU counts
    once it ended (it has by the time the import returns)."""

    def __init__(self) -> None:
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()

    def spent(self) -> Spent:
        return Spent(time.perf_counter() - self.wall, cpu_seconds() - self.cpu)


def child_csv(path: Path) -> tuple[int, Spent]:
    started = Stopwatch()
    text = path.read_bytes().decode("utf-8-sig")
    rows = sum(1 for _ in csv.reader(io.StringIO(text, newline=""))) - 1
    return rows, started.spent()


def _prepared(config_dir: Path):  # type: ignore[no-untyped-def]
    """The household and what the reader needs, loaded before the clock starts (as modules are)."""
    from interceptor.config import load_config
    from interceptor.importers.people import People
    from interceptor.importers.records import ReadOptions

    (config_dir / "interceptor.toml").write_text(household())
    config = load_config(config_dir / "interceptor.toml", environ={},
                         overrides={"data_dir": str(config_dir / "data")})
    return config, ReadOptions(config.household.zone), People(config.users, None)


def _second_pass(path: Path, count: Callable[..., int]) -> tuple[int, Spent]:
    """Detection and the check pass, then `count(config, sources, options, people, now, summary)`:
    what `read` and `prepare` share."""
    from interceptor.importers import run
    from interceptor.importers.summary import Summary

    with tempfile.TemporaryDirectory() as scratch:
        config, options, people = _prepared(Path(scratch))
        started = Stopwatch()
        sources = run.sources([(str(path), path.read_bytes())])
        now = datetime.now(UTC)
        run.check(sources[0], options, now)
        summary = Summary(sources[0].label, sources[0].title)
        counted = count(config, sources, options, people, now, summary)
        elapsed = started.spent()
    assert summary.skipped == 0, summary.lines()
    return counted, elapsed


def child_read(path: Path) -> tuple[int, Spent]:
    from interceptor.importers import run

    return _second_pass(path, lambda _, sources, options, people, now, summary: sum(
        1 for _ in run.items(sources[0], options, people, now, summary)))


def child_prepare(path: Path) -> tuple[int, Spent]:
    from interceptor.importers import worker
    from interceptor.pipeline import Preparer

    return _second_pass(path, lambda config, sources, options, people, now, summary: sum(
        len(batch) for batch in worker.Batches(sources, options, people, now, Preparer(config, {})).for_source(
            0, summary)))


def child_sqlite(path: Path) -> tuple[int, Spent]:
    started = Stopwatch()
    text = path.read_bytes().decode("utf-8-sig")
    rows = csv.reader(io.StringIO(text, newline=""))
    next(rows)
    with tempfile.TemporaryDirectory() as scratch:
        db = sqlite3.connect(Path(scratch) / "baseline.sqlite", isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE m (id INTEGER PRIMARY KEY, taken_at REAL, person TEXT, weight REAL, vendor TEXT)")
        count, batch = 0, []
        for cells in rows:
            moment = datetime.fromisoformat(cells[0]).timestamp()
            batch.append((moment, cells[2], float(cells[1]), json.dumps({"bmi": float(cells[3]),
                                                                        "fat": float(cells[4])})))
            if len(batch) == 500:
                db.execute("BEGIN")
                db.executemany("INSERT INTO m (taken_at, person, weight, vendor) VALUES (?, ?, ?, ?)", batch)
                db.execute("COMMIT")
                count += len(batch)
                batch = []
        if batch:
            db.executemany("INSERT INTO m (taken_at, person, weight, vendor) VALUES (?, ?, ?, ?)", batch)
            count += len(batch)
        elapsed = started.spent()
        db.close()
    return count, elapsed


def child_import(path: Path) -> tuple[int, Spent]:
    from interceptor.importers import run
    from interceptor.importers.cli import store_files

    with tempfile.TemporaryDirectory() as scratch:
        config, options, people = _prepared(Path(scratch))
        started = Stopwatch()
        sources = run.sources([(str(path), path.read_bytes())])
        now = datetime.now(UTC)
        sizes = [run.check(source, options, now) for source in sources]
        (summary,) = store_files(config, sources, sizes, options, people, now)
        elapsed = started.spent()
    assert summary.skipped == 0 and summary.new == summary.weigh_ins, summary.lines()
    return summary.new, elapsed


CHILDREN = {"csv": child_csv, "read": child_read, "prepare": child_prepare, "sqlite": child_sqlite,
            "import": child_import}


def measure(kind: str, path: Path) -> dict[str, float]:
    output = subprocess.run([sys.executable, __file__, "--child", kind, str(path)], capture_output=True, text=True,
                            check=True, timeout=1800)
    return json.loads(output.stdout)


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return sorted(runs, key=lambda figure: figure["rows_per_s"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--years", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step, alternating; medians shown")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "FILE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.child:
        kind, file = arguments.child
        rows, spent = CHILDREN[kind](Path(file))
        print(json.dumps({"rows": rows, "seconds": spent.seconds, "rows_per_s": rows / spent.seconds,
                          "cpu_us_per_row": spent.cpu_seconds / rows * 1e6,
                          "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                          "reader_peak_rss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
        return
    with tempfile.TemporaryDirectory() as scratch:
        small, large = Path(scratch) / "small.csv", Path(scratch) / "large.csv"
        generate(small, 1)
        rows = generate(large, arguments.years)
        print(f"{arguments.years}-year, {len(PEOPLE)}-person Zepp Life BODY file: {rows:,} rows,"
              f" {large.stat().st_size / 1e6:.1f} MB")
        runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in CHILDREN}
        for _ in range(arguments.repeats):
            for kind in CHILDREN:
                runs[kind].append(measure(kind, large))
        figures = {kind: median_run(found) for kind, found in runs.items()}
        small_runs = {kind: measure(kind, small) for kind in ("read", "prepare", "import")}
        memory = {kind: figure["peak_rss_mib"] for kind, figure in small_runs.items()}
    print(f"{'step':<8} {'rows/s':>10} {'seconds':>8} {'peak RSS MiB':>13} {'RSS at 1 year':>14}")
    for kind, figure in figures.items():
        small_rss = f"{memory[kind]:.1f}" if kind in memory else ""
        print(f"{kind:<8} {figure['rows_per_s']:>10,.0f} {figure['seconds']:>8.2f} {figure['peak_rss_mib']:>13.1f}"
              f" {small_rss:>14}")
    print(f"import's reading process: peak RSS {figures['import']['reader_peak_rss_mib']:.1f} MiB"
          f" ({small_runs['import']['reader_peak_rss_mib']:.1f} at 1 year)")
    print(f"import: {figures['import']['cpu_us_per_row']:.0f} µs of CPU per row in both processes together"
          f" (prepare alone: {figures['prepare']['cpu_us_per_row']:.0f} µs)")
    print(f"read / csv module: {figures['read']['rows_per_s'] / figures['csv']['rows_per_s']:.3f};"
          f" import / sqlite3 insert: {figures['import']['rows_per_s'] / figures['sqlite']['rows_per_s']:.3f};"
          f" floor {FLOOR:,} rows/s for the whole import:"
          f" {'met' if figures['import']['rows_per_s'] >= FLOOR else 'NOT met'}")


if __name__ == "__main__":
    main()
