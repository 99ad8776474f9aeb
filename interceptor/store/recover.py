"""`interceptor journal recover`: copy what can still be read from a damaged journal into a new one.

The damaged file is never changed: it is renamed `journal.damaged-<time>.sqlite` (with its -wal and
-shm files) and kept for whoever wants to try harder; the new journal takes its place once it passes
`PRAGMA quick_check`. Each table of the journal's schema is copied in rowid order, and a range of
rows that cannot be read is stepped over (probing further and further ahead): the rows on a damaged
page, and those only reachable through one, are lost; every other row keeps its id.

SQLite's shell has a `.recover` that reads pages directly, but it needs the `sqlite_dbpage` table,
which Debian's SQLite is built without (`sqlite3 x.sqlite .recover` fails with "SQL logic error"), so
it cannot be relied on; docs/security.md says how to try it on the kept file with a shell that has it.

The server must not have the journal open meanwhile: recovering checks that it can lock the file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sqlite3
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from interceptor.store.database import JournalError, open_writer
from interceptor.store.integrity import quick_check

# `device_radio` (the last signal of each scale and gateway) is not copied: the next frames refill it.
TABLES = ("measurements", "devices", "device_history", "outbox", "imports", "meta")
CHUNK_ROWS = 500
SIDE_FILES = ("-wal", "-shm")


@dataclass
class Recovered:
    damaged_kept_as: Path
    rows: dict[str, int] = field(default_factory=dict)  # table → rows in the new journal


# Where SQLite takes its shared lock on a database file (os_unix.c: PENDING_BYTE 0x40000000, then
# RESERVED_BYTE, then SHARED_SIZE bytes from SHARED_FIRST). A connection to a WAL database holds a
# read lock there for as long as it is open, even when idle.
SHARED_FIRST = 0x40000002
SHARED_SIZE = 510


def _in_use(path: Path) -> bool:
    """Does another process (a running server) have the journal open? Asked of the file's locks,
    without opening it as a database (which could write to it)."""
    descriptor = os.open(path, os.O_RDWR)
    try:
        fcntl.lockf(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB, SHARED_SIZE, SHARED_FIRST, os.SEEK_SET)
    except OSError as error:
        if error.errno in (errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(descriptor)  # releases the lock just taken
    return False


def _remove(path: Path) -> None:
    for suffix in ("", *SIDE_FILES):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _copy_rows(source: sqlite3.Connection, target: sqlite3.Connection, table: str) -> None:
    """Every readable row of `table`, in rowid order, stepping over what cannot be read."""
    try:
        wanted = [row[1] for row in target.execute(f"PRAGMA table_info({table})")]
        present = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError:
        return
    columns = [name for name in wanted if name in present]
    if not columns:
        return
    names = ", ".join(columns)
    select = f"SELECT rowid, {names} FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT ?"
    insert = f"INSERT OR IGNORE INTO {table} (rowid, {names}) VALUES ({', '.join('?' * (len(columns) + 1))})"
    after = 0  # rowids in the journal start at 1
    chunk = CHUNK_ROWS
    while True:
        try:
            rows = source.execute(select, (after, chunk)).fetchall()
        except sqlite3.DatabaseError:
            if chunk > 1:  # read up to the damage one row at a time
                chunk = 1
                continue
            next_after = _step_over(source, table, after)
            if next_after is None:
                return
            with contextlib.suppress(sqlite3.DatabaseError):  # the row reading resumes after may be whole
                target.executemany(insert, source.execute(f"SELECT rowid, {names} FROM {table} WHERE rowid = ?",
                                                          (next_after,)).fetchall())
            after, chunk = next_after, CHUNK_ROWS
            continue
        if not rows:
            return
        target.executemany(insert, rows)
        after = rows[-1][0]
        chunk = CHUNK_ROWS


def _step_over(source: sqlite3.Connection, table: str, after: int) -> int | None:
    """The smallest rowid from which reading works again after `after`: probing 1, 2, 4, ... rows
    ahead, then halving the gap, so that only the rows of the damaged page are lost."""

    def readable(start: int) -> bool:
        try:
            source.execute(f"SELECT rowid FROM {table} WHERE rowid > ? ORDER BY rowid LIMIT 1", (start,)).fetchall()
        except sqlite3.DatabaseError:
            return False
        return True

    failed, step = after, 1
    while not readable(after + step):
        failed = after + step
        step *= 2
        if after + step >= 2**63:
            return None
    good = after + step
    while good - failed > 1:
        middle = (failed + good) // 2
        failed, good = (failed, middle) if readable(middle) else (middle, good)
    return good


def _row_by_row(damaged: Path, target: Path) -> None:
    source = sqlite3.connect(f"file:{damaged}?mode=ro", uri=True)
    destination = open_writer(target)
    try:
        destination.execute("BEGIN")
        for table in TABLES:
            _copy_rows(source, destination, table)
        destination.execute("COMMIT")
    finally:
        source.close()
        destination.close()


def recover(journal: Path, *, now: datetime | None = None) -> Recovered:
    """Recover `journal` in place, the damaged file kept beside it."""
    if not journal.exists():
        raise JournalError(f"no journal at {journal}: nothing to recover")
    if _in_use(journal):
        raise JournalError(f"{journal} is open in another process: stop `interceptor serve` first")
    target = journal.with_name("journal.recovering.sqlite")
    _remove(target)
    _row_by_row(journal, target)
    problem = quick_check(target, read_only=False)
    if problem is not None:
        raise JournalError(f"the recovered journal {target} is not whole either ({problem}); the damaged one is"
                           " unchanged")
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = journal.with_name(f"journal.damaged-{stamp}.sqlite")
    for suffix in ("", *SIDE_FILES):
        side = Path(f"{journal}{suffix}")
        if side.exists():
            side.rename(f"{kept}{suffix}")
    target.rename(journal)
    connection = sqlite3.connect(journal)
    try:
        rows = {table: int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]) for table in TABLES}
    finally:
        connection.close()
    return Recovered(kept, rows)
