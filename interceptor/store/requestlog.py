"""Every request a device made, with its raw body, for debugging a new firmware or a refused weigh-in.

Kept apart from the journal on purpose: it is a bounded ring (the newest `max_rows` requests, bodies
capped at `max_body_bytes`), committed without fsync (`synchronous=NORMAL`), so debugging costs the
durable journal nothing. Secrets are masked by the caller before a body reaches here.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from interceptor.model import utc_from_unix

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


class RequestLog:
    def __init__(self, path: Path, *, max_rows: int = 10_000, max_body_bytes: int = 64 * 1024) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self.max_rows = max_rows
        self.max_body_bytes = max_body_bytes
        self._since_prune = 0

    def close(self) -> None:
        self._db.close()

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
    ) -> int:
        cursor = self._db.execute(
            "INSERT INTO requests (received_at, peer, method, path, http_status, status, outcome, detail,"
            " body_size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (received_at.timestamp(), peer, method, path[:512], http_status, status, outcome,
             detail, len(body), body[: self.max_body_bytes]),
        )
        self._since_prune += 1
        if self._since_prune >= max(1, self.max_rows // 10):
            self._since_prune = 0
            self._db.execute(
                "DELETE FROM requests WHERE id <= (SELECT max(id) FROM requests) - ?", (self.max_rows,)
            )
        return int(cursor.lastrowid or 0)

    def recent(self, limit: int = 100) -> list[LoggedRequest]:
        rows = self._db.execute(
            "SELECT id, received_at, peer, method, path, http_status, status, outcome, detail, body_size, body"
            " FROM requests ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            LoggedRequest(row[0], utc_from_unix(row[1]), *row[2:10], bytes(row[10])) for row in reversed(rows)
        ]
