"""Every request a device made, with its raw body, for debugging a new firmware or a refused weigh-in.

Kept apart from the journal on purpose: it is a bounded ring, gathered in memory and handed in
batches (at most `flush_after` seconds or `batch_rows` rows late) to its own writer thread, which
commits without fsync: debugging costs a scale's reply almost nothing and never puts the event loop
on the disk. Secrets are masked by the caller before a body reaches here.

Bounded in rows and in bytes, because junk requests are as big as a client likes (the issue: 57 kB
forms grew the file to 577 MB in 20 s). The newest `max_rows` requests are kept, bodies cut at
`max_body_bytes`, paths at `MAX_PATH_CHARS` and details at `MAX_DETAIL_CHARS`; and the writer thread
keeps the rows' bytes (bodies, paths, details and a per-row overhead) under `DATA_SHARE` of
`max_bytes` by removing the oldest, then gives the freed pages back to the file system (incremental
vacuum), and removes more if the file is still larger than `max_bytes`. The write-ahead log is
truncated to `WAL_LIMIT_BYTES` after each checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from interceptor.model import utc_from_unix
from interceptor.paths import private_file
from interceptor.store.writer import Writer

log = logging.getLogger(__name__)

MAX_PATH_CHARS = 512
MAX_DETAIL_CHARS = 1024
ROW_OVERHEAD_BYTES = 128  # the row's other columns, its record header, its share of a page
DATA_SHARE = 0.8  # of max_bytes for the rows: the rest is page slack and the file's own structure
WAL_LIMIT_BYTES = 4 * 1024 * 1024
_ROW_BYTES = f"length(body) + length(path) + coalesce(length(detail), 0) + {ROW_OVERHEAD_BYTES}"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    peer TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    status INTEGER,
    outcome TEXT NOT NULL,
    detail TEXT,
    body_size INTEGER NOT NULL,
    body BLOB NOT NULL
);
"""


@dataclass(frozen=True)
class LoggedRequest:
    id: int
    received_at: datetime
    peer: str | None
    method: str
    path: str
    http_status: int
    status: int | None
    outcome: str
    detail: str | None
    body_size: int
    body: bytes


def _open(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(private_file(path), isolation_level=None)
    if connection.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
        # New, or from before the byte cap: VACUUM sets incremental vacuum only outside WAL mode. An old
        # file is rewritten once, at the first start-up after the upgrade.
        connection.execute("PRAGMA journal_mode=DELETE")
        connection.execute("PRAGMA auto_vacuum=INCREMENTAL")
        connection.execute("VACUUM")
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}")
    connection.executescript(_SCHEMA)
    return connection


class _Ring:
    """The writer thread's side: its connection, and the bytes its rows hold (kept as it goes)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.row_bytes = 0
        self.counted = False  # row_bytes is to be (re)counted: at the start, and after a failed job

    def count(self) -> None:
        self.row_bytes = int(self.db.execute(f"SELECT coalesce(sum({_ROW_BYTES}), 0) FROM requests").fetchone()[0])
        self.counted = True


class RequestLog:
    def __init__(
        self, path: Path, *, max_rows: int = 10_000, max_bytes: int = 32 * 1024 * 1024,
        max_body_bytes: int = 64 * 1024, batch_rows: int = 64, flush_after: float = 0.1,
    ) -> None:
        self.path = path
        self._writer: Writer[_Ring] = Writer("request-log-writer", lambda: _open(path), _Ring)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.max_body_bytes = max_body_bytes
        self.batch_rows = batch_rows
        self.flush_after = flush_after
        self._pending: list[tuple] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._failing: str | None = None  # the last write error, until a batch is written again

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def _insert(self, ring: _Ring, rows: Sequence[tuple]) -> None:
        if not ring.counted:
            ring.count()
        ring.counted = False  # until this job is through: a failure rolls back what it counted
        self._insert_counted(ring, rows)
        ring.counted = True

    def _insert_counted(self, ring: _Ring, rows: Sequence[tuple]) -> None:
        db = ring.db
        db.executemany(
            "INSERT INTO requests (received_at, peer, method, path, http_status, status, outcome, detail,"
            " body_size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        ring.row_bytes += sum(len(row[9]) + len(row[3]) + len(row[7] or "") + ROW_OVERHEAD_BYTES for row in rows)
        newest = db.execute("SELECT max(id) FROM requests").fetchone()[0]
        self._remove_up_to(ring, newest - self.max_rows)
        budget = int(self.max_bytes * DATA_SHARE)
        if ring.row_bytes > budget:
            self._remove_oldest_bytes(ring, ring.row_bytes - budget)
        for _ in range(8):  # page slack can make the file larger than its rows: then fewer rows
            for _ in range(db.execute("PRAGMA freelist_count").fetchone()[0]):
                db.execute("PRAGMA incremental_vacuum")  # one page a step, and Python steps it once
            size = db.execute("PRAGMA page_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
            if size <= self.max_bytes or not ring.row_bytes:
                return
            self._remove_oldest_bytes(ring, max(size - self.max_bytes, ring.row_bytes // 4))

    def _remove_oldest_bytes(self, ring: _Ring, excess: int) -> None:
        """Remove the oldest rows holding at least `excess` bytes, reading only their sizes."""
        removed = 0
        last = None
        for row_id, size in ring.db.execute(f"SELECT id, {_ROW_BYTES} FROM requests ORDER BY id"):
            removed += size
            last = row_id
            if removed >= excess:
                break
        if last is not None:
            self._remove_up_to(ring, last)

    def _remove_up_to(self, ring: _Ring, last_id: int) -> None:
        removed = ring.db.execute(f"SELECT coalesce(sum({_ROW_BYTES}), 0) FROM requests WHERE id <= ?",
                                  (last_id,)).fetchone()[0]
        if removed:
            ring.db.execute("DELETE FROM requests WHERE id <= ?", (last_id,))
            ring.row_bytes -= int(removed)

    def flush(self) -> None:
        """Hand the pending rows to the writer thread as one job (one transaction with the ring trimmed)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []

        def done(future: object) -> None:  # on the writer thread, one batch at a time
            error = future.exception()  # type: ignore[attr-defined]
            if error is None:
                if self._failing is not None:
                    log.info("the request log is written again")
                    self._failing = None
            elif str(error) != self._failing:  # one line per kind of failure (a full disk), not per batch
                self._failing = str(error)
                log.error("could not write %d rows to the request log: %s (the journal is not affected; further"
                          " failures like this one are not logged)", len(rows), error)

        self._writer.submit(lambda db: self._insert(db, rows), durable=False).add_done_callback(done)

    def add(
        self,
        *,
        received_at: datetime,
        peer: str | None,
        method: str,
        path: str,
        http_status: int,
        status: int | None,
        outcome: str,
        detail: str | None,
        body: bytes,
    ) -> None:
        self._pending.append((received_at.timestamp(), peer, method, path[:MAX_PATH_CHARS], http_status, status,
                              outcome, detail[:MAX_DETAIL_CHARS] if detail else detail, len(body),
                              body[: self.max_body_bytes]))
        if len(self._pending) >= self.batch_rows:
            self.flush()
        elif self._flush_timer is None:
            try:
                self._flush_timer = asyncio.get_running_loop().call_later(self.flush_after, self.flush)
            except RuntimeError:  # no event loop (a command-line caller): write at once
                self.flush()

    def recent(self, limit: int = 100) -> list[LoggedRequest]:
        """The newest requests, oldest first, once everything added before has been written."""
        self.flush()

        def query(ring: _Ring) -> list[tuple]:
            return ring.db.execute(
                "SELECT id, received_at, peer, method, path, http_status, status, outcome, detail, body_size, body"
                " FROM requests ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()

        rows = self._writer.call(query, durable=False)
        return [
            LoggedRequest(row[0], utc_from_unix(row[1]), *row[2:10], bytes(row[10])) for row in reversed(rows)
        ]
