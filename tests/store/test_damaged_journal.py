"""Issue 11 item 4 with the real `interceptor` command: a journal with a damaged page is found out
before a weigh-in is acknowledged into it, and `interceptor journal recover` brings back the rest.

The damage is real: a page of the file overwritten with garbage, found with SQLite's `dbstat` table."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sqlite3
import time
from datetime import datetime, timedelta
from pathlib import Path

from interceptor.config import load_config
from interceptor.doctor import check_journal
from interceptor.store.recover import recover
from interceptor.withings import scale
from tests.conftest import Served, run_cli, start_server

ROWS = 300  # two weigh-ins a page: 150 leaf pages, more than any cache the server keeps warm


def build_journal(config_path: Path, data_dir: Path) -> None:
    """ROWS weigh-ins of Franziska, imported from an openScale export."""
    export = data_dir.parent / "openscale.csv"
    start = datetime(2023, 1, 1, 7, 0)
    export.write_text("DATE,TIME,WEIGHT\n" + "".join(
        f"{(start + timedelta(days=index)).date()},07:{index % 60:02d}:00,{60 + index % 10 / 10:.1f}\n"
        for index in range(ROWS)))
    result = run_cli("import", "--config", str(config_path), "--data-dir", str(data_dir), "--user", "fra",
                     str(export))
    assert result.returncode == 0, result.stderr


def pages_of(path: Path, btree: str) -> list[int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return [row[0] for row in db.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno", (btree,))]


def damage(path: Path, pages: list[int]) -> None:
    """Overwrite whole pages with garbage that still claims to be a table leaf (0x0d)."""
    noise = random.Random(11)
    with path.open("r+b") as file:
        for page in pages:
            file.seek((page - 1) * 4096)
            file.write(bytes([0x0D]) + noise.randbytes(4095))


def measurement_ids(path: Path) -> set[int]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return {row[0] for row in db.execute("SELECT id FROM measurements")}


def test_serve_refuses_a_damaged_journal_and_recover_keeps_every_readable_weigh_in(
        config_path: Path, data_dir: Path) -> None:
    journal = data_dir / "journal.sqlite"
    build_journal(config_path, data_dir)
    everything = measurement_ids(journal)
    victim = pages_of(journal, "measurements")[ROWS // 4]
    damage(journal, [victim])
    damaged_bytes = journal.read_bytes()

    refused = run_cli("serve", "--config", str(config_path), "--data-dir", str(data_dir), "--no-dns",
                      "--http-listen", "127.0.0.1:0")
    assert refused.returncode == 1
    [line] = [text for text in refused.stderr.splitlines() if not text[:4].isdigit()]  # after serve's config line
    assert f"the journal {journal} is damaged" in line and f"Page {victim}" in line
    assert "interceptor journal recover" in line
    assert journal.read_bytes() == damaged_bytes  # nothing written into it

    listed = run_cli("measurements", "list", "--config", str(config_path), "--data-dir", str(data_dir))
    assert listed.returncode == 1 and "is damaged" in listed.stderr and "journal recover" in listed.stderr
    assert "Traceback" not in listed.stderr
    checked = run_cli("journal", "check", "--config", str(config_path), "--data-dir", str(data_dir))
    assert checked.returncode == 1 and "is damaged" in checked.stderr
    doctor = check_journal(load_config(config_path, overrides={"data_dir": str(data_dir)}))
    assert not doctor.ok and "is damaged" in doctor.detail and "journal recover" in doctor.detail

    recovered = run_cli("journal", "recover", "--config", str(config_path), "--data-dir", str(data_dir))
    assert recovered.returncode == 0, recovered.stderr
    [kept] = data_dir.glob("journal.damaged-*.sqlite")
    assert kept.read_bytes() == damaged_bytes and f"kept as {kept}" in recovered.stderr
    lost = everything - measurement_ids(journal)
    assert 1 <= len(lost) <= 3 and f"{ROWS - len(lost)} measurements" in recovered.stderr  # one page's rows

    served = start_server(config_path, data_dir)
    try:
        conversation = asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 60,
                                                  weight_g=61000))
        assert conversation.response(2).json()["status"] == 0
        listing = served.cli("measurements", "list", "--format", "json")
        assert listing.returncode == 0 and len(json.loads(listing.stdout)) == ROWS - len(lost) + 1
    finally:
        served.kill()


def test_recover_refuses_while_the_server_has_the_journal_open(served: Served) -> None:
    asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 60, weight_g=70000))
    result = served.cli("journal", "recover")
    assert result.returncode == 1 and "open in another process: stop `interceptor serve` first" in result.stderr
    assert not list(served.data_dir.glob("journal.damaged-*"))


def test_recover_steps_over_a_damaged_page_in_every_table(tmp_path: Path, config_path: Path) -> None:
    """In-process, on a copy damaged in several places: each table keeps every row of its readable pages."""
    data_dir = tmp_path / "data"
    build_journal(config_path, data_dir)
    journal = data_dir / "journal.sqlite"
    everything = measurement_ids(journal)
    leaves = pages_of(journal, "measurements")
    damage(journal, [leaves[0], leaves[10], leaves[11], leaves[-1], pages_of(journal, "imports")[1]])
    result = recover(journal)
    assert result.rows["measurements"] == len(measurement_ids(journal))
    assert ROWS - 10 <= result.rows["measurements"] < ROWS and measurement_ids(journal) <= everything
    assert ROWS - 150 <= result.rows["imports"] < ROWS  # one of four leaf pages
    assert os.stat(journal).st_mode & 0o777 == 0o600


def test_a_write_that_meets_a_damaged_page_is_refused_with_a_non_zero_status(config_path: Path,
                                                                             data_dir: Path) -> None:
    """The damage appears while the server runs (after its start-up check): the weigh-in that meets
    it gets a non-zero status and HTTP 500, the log says once what is wrong, and the next weigh-in is
    refused at once without touching the file."""
    journal = data_dir / "journal.sqlite"
    build_journal(config_path, data_dir)
    served = start_server(config_path, data_dir)
    try:
        damage(journal, pages_of(journal, "sqlite_autoindex_measurements_1"))  # where a new identity goes
        now = int(time.time())
        answers = []
        for offset in (60, 50):
            conversation = asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=now - offset,
                                                      weight_g=61000))
            store = conversation.response(2)
            answers.append((store.status, store.json()["status"]))
    finally:
        log = served.kill()
    assert all(http == 500 and status != 0 for http, status in answers), answers
    assert log.count(f"interceptor.store.journal: the journal {journal} is damaged") == 1  # said once
    assert log.count("could not store POST /cgi-bin/measure from 127.0.0.1") == 2  # each refusal, bounded
    assert "interceptor journal recover" in log and "Traceback" not in log

