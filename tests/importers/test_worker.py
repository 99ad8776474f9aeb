"""`interceptor import` reads and prepares a file in a second process while it writes (importers.worker):
it stores what one process stores, and a reading process that dies or fails is reported and costs
nothing that importing the file again does not finish."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from interceptor.config import load_config
from interceptor.importers import run, worker
from interceptor.importers.cli import store_files
from interceptor.importers.people import People
from interceptor.importers.records import ReadOptions
from tests.conftest import INTERCEPTOR, run_cli, wait_until

HEADER = "time,weight,height,bmi,fatRate,bodyWaterRate,boneMass,metabolism,muscleRate,visceralFat\n"


def zepp_csv(path: Path, days: int, per_day: int = 1) -> int:
    """A Zepp Life BODY csv of Fred (200 cm) and Franziska (161 cm), `per_day` weigh-ins a day each
    from 2009 on, with a row of somebody 172 cm tall and one of zero weight every 100 days; returns
    the number of rows to store."""
    start = datetime(2009, 1, 1, 6, 0, tzinfo=UTC)
    stored = 0
    with path.open("w", encoding="utf-8") as out:
        out.write("\ufeff" + HEADER)
        for day, time_of_day in ((day, hours) for day in range(days) for hours in range(0, 12, 12 // per_day)):
            for index, (height, weight) in enumerate(((200, 92.0), (161, 58.0))):
                at = start + timedelta(days=day, hours=time_of_day, minutes=9 * index)
                kg = weight + day % 30 / 10
                out.write(f"{at:%Y-%m-%d %H:%M:%S}+0000,{kg:.2f},{height},{kg / (height / 100) ** 2:.1f},"
                          f"{20 + day % 7 / 2:.2f},{54.5:.2f},{kg * 0.04:.2f},{1400 + kg * 9:.1f},{kg * 0.7:.2f},7\n")
                stored += 1
            if day % 100 == 0 and time_of_day == 0:
                out.write(f"{start + timedelta(days=day, hours=2):%Y-%m-%d %H:%M:%S}+0000,70.00,172,,,,,,,\n")
                out.write(f"{start + timedelta(days=day, hours=3):%Y-%m-%d %H:%M:%S}+0000,0,200,,,,,,,\n")
    return stored


def rows(data_dir: Path) -> list[tuple]:
    """Every stored weigh-in, but for when it was received (the moment the import ran)."""
    with sqlite3.connect(data_dir / "journal.sqlite") as db:
        return db.execute("SELECT id, identity, kind, source, device_id, device_model, device_user_id, user,"
                          " assignment, taken_at, readings, vendor_metrics, metrics, refusals, raw FROM measurements"
                          " ORDER BY id").fetchall()


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc, so no extra tool is needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_the_second_process_stores_what_one_process_stores(config_path: Path, data_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    export = tmp_path / "BODY_1.csv"
    expected = zepp_csv(export, 700)  # three batches and more, with skipped rows in several
    done = run_cli("import", str(export), "--config", str(config_path), "--data-dir", str(data_dir))
    assert done.returncode == 0, done.stderr
    assert f": {expected} new, 0 merged into stored weigh-ins, 0 unchanged, 14 skipped" in done.stdout

    alone = tmp_path / "alone"
    monkeypatch.setattr(worker, "available", lambda: False)
    config = load_config(config_path, environ={}, overrides={"data_dir": str(alone)})
    options = ReadOptions(config.household.zone)
    sources = run.sources([(str(export), export.read_bytes())])
    now = datetime.now(UTC)
    sizes = [run.check(source, options, now) for source in sources]
    (summary,) = store_files(config, sources, sizes, options, People(config.users, None), now)
    assert summary.lines() == done.stdout.splitlines()
    assert rows(alone) == rows(data_dir) and len(rows(data_dir)) == expected


def test_a_reading_process_that_dies_is_reported_and_importing_again_finishes(config_path: Path, data_dir: Path,
                                                                              tmp_path: Path) -> None:
    export = tmp_path / "BODY_1.csv"
    expected = zepp_csv(export, 6000, per_day=2)  # 24,000 weigh-ins: seconds of reading
    command = [str(INTERCEPTOR), "import", str(export), "--config", str(config_path), "--data-dir", str(data_dir)]
    importing = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        reader = wait_until(lambda: children(importing.pid), timeout=30, what="the reading process")
        os.kill(reader[0], signal.SIGKILL)
        out, err = importing.communicate(timeout=60)
    finally:
        importing.kill()
    assert importing.returncode != 0 and out == ""
    assert f"the process reading {export} ended early (exit code -9)" in err
    assert "what was stored before stays; importing the same files again finishes the import" in err
    assert "Traceback" not in err

    again = run_cli(*command[1:])
    assert again.returncode == 0, again.stderr
    assert len(rows(data_dir)) == expected and len({row[1] for row in rows(data_dir)}) == expected


FAILING_READER = """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    from interceptor.config import load_config
    from interceptor.importers import run, worker
    from interceptor.importers.people import People
    from interceptor.importers.records import ReadOptions
    from interceptor.importers.summary import Summary
    from interceptor.pipeline import Preparer

    config_path, export = Path(sys.argv[1]), Path(sys.argv[2])
    config = load_config(config_path, environ={}, overrides={"data_dir": str(config_path.parent / "data")})
    items = run.items

    def failing(*args):
        for number, item in enumerate(items(*args)):
            if number == 1200:
                raise RuntimeError("the disk went away")
            yield item

    run.items = failing  # in the child too: it is forked from here
    options = ReadOptions(config.household.zone)
    sources = run.sources([(str(export), export.read_bytes())])
    assert worker.available()
    with worker.Worker(sources, options, People(config.users, None), datetime.now(UTC),
                       Preparer(config, {})) as batches:
        received = 0
        try:
            for batch in batches.for_source(0, Summary(str(export), "Zepp Life")):
                received += len(batch)
        except worker.WorkerFailed as error:
            print(received, error)
"""


def test_a_failure_in_the_reading_process_reaches_this_one_with_its_traceback(config_path: Path,
                                                                             tmp_path: Path) -> None:
    export = tmp_path / "BODY_1.csv"
    zepp_csv(export, 1000)
    # A process of its own: the reading process is forked from a process without threads.
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(FAILING_READER), str(config_path), str(export)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    received, message = done.stdout.split(" ", 1)
    assert int(received) == 1000  # the two batches read before the failure
    assert message.startswith(f"reading {export} failed:\nTraceback")
    assert "RuntimeError: the disk went away" in message
