"""Every request a device made, with its raw body, for debugging a new firmware or a refused weigh-in.

Kept apart from the journal on purpose: it is a bounded ring (the newest `max_rows` requests, bodies
capped at `max_body_bytes`), gathered in memory and handed in batches (at most `flush_after` seconds
or `batch_rows` rows late) to its own writer thread, which commits without fsync: debugging costs a
scale's reply almost nothing and never puts the event loop on the disk. Secrets are masked by the
caller before a body reaches here.
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
from interceptor.store.writer import Writer

log = logging.getLogger(__name__)

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
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.executescript(_SCHEMA)
    return connection


class RequestLog:
    def __init__(
        self, path: Path, *, max_rows: int = 10_000, max_body_bytes: int = 64 * 1024, batch_rows: int = 64,
        flush_after: float = 0.1,
    ) -> None:
        self.path = path
        self._writer: Writer[sqlite3.Connection] = Writer("request-log-writer", lambda: _open(path), lambda db: db)
        self.max_rows = max_rows
        self.max_body_bytes = max_body_bytes
        self.batch_rows = batch_rows
        self.flush_after = flush_after
        self._pending: list[tuple] = []
        self._flush_timer: asyncio.TimerHandle | None = None

    def close(self) -> None:
        self.flush()
        self._writer.close()

    def _insert(self, db: sqlite3.Connection, rows: Sequence[tuple]) -> None:
        db.executemany(
            "INSERT INTO requests (received_at, peer, method, path, http_status, status, outcome, detail,"
            " body_size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        db.execute("DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?", (self.max_rows,))

    def flush(self) -> None:
        """Hand the pending rows to the writer thread as one job (one transaction with the ring trimmed)."""
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if not self._pending:
            return
        rows, self._pending = self._pending, []

        def done(future: object) -> None:
            error = future.exception()  # type: ignore[attr-defined]
            if error is not None:  # the debug log must never take the server down; the journal is unaffected
                log.error("could not write %d rows to the request log: %s", len(rows), error)

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
        self._pending.append((received_at.timestamp(), peer, method, path[:512], http_status, status, outcome,
                              detail, len(body), body[: self.max_body_bytes]))
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

        def query(db: sqlite3.Connection) -> list[tuple]:
            return db.execute(
                "SELECT id, received_at, peer, method, path, http_status, status, outcome, detail, body_size, body"
                " FROM requests ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()

        rows = self._writer.call(query, durable=False)
        return [
            LoggedRequest(row[0], utc_from_unix(row[1]), *row[2:10], bytes(row[10])) for row in reversed(rows)
        ]
