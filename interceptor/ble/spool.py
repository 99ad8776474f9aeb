"""The gateway's on-disk queue: every frame goes through it, so a server that is down or
restarting delays frames instead of losing them. Bounded: when full, the oldest frames go first
(a weigh-in an hour old matters less than the one happening now) and the loss is logged."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from interceptor.paths import private_file

log = logging.getLogger(__name__)

DEFAULT_MAX_FRAMES = 200_000  # ~50 MB of SQLite at ~250 bytes a frame


class Spool:
    def __init__(self, path: Path, max_frames: int = DEFAULT_MAX_FRAMES) -> None:
        self.max_frames = max_frames
        self.dropped = 0
        self._db = sqlite3.connect(str(private_file(path)), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS frames (id INTEGER PRIMARY KEY AUTOINCREMENT, body TEXT NOT NULL)")
        self._count = self._db.execute("SELECT count(*) FROM frames").fetchone()[0]

    def __len__(self) -> int:
        return self._count

    def add(self, bodies: list[str]) -> None:
        """Frames as JSON text, in one transaction."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT INTO frames (body) VALUES (?)", [(body,) for body in bodies])
            self._count += len(bodies)
            excess = self._count - self.max_frames
            if excess > 0:
                self._db.execute("DELETE FROM frames WHERE id IN (SELECT id FROM frames ORDER BY id LIMIT ?)",
                                 (excess,))
                self._count -= excess
                self.dropped += excess
                log.warning("gateway: spool full (%d frames); dropped the %d oldest (%d in all)",
                            self.max_frames, excess, self.dropped)

    def peek(self, max_count: int, max_bytes: int) -> list[tuple[int, str]]:
        """The oldest frames, at most `max_count` of them and about `max_bytes` of JSON."""
        rows: list[tuple[int, str]] = []
        size = 0
        for row_id, body in self._db.execute("SELECT id, body FROM frames ORDER BY id LIMIT ?", (max_count,)):
            if rows and size + len(body) > max_bytes:
                break
            rows.append((row_id, body))
            size += len(body) + 1
        return rows

    def remove(self, last_id: int) -> None:
        with self._db:
            removed = self._db.execute("DELETE FROM frames WHERE id <= ?", (last_id,)).rowcount
        self._count -= removed

    def close(self) -> None:
        self._db.close()
