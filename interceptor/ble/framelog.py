"""The scale frames of the last half hour, on disk, so that no weigh-in depends on process memory.

The aggregator holds half-finished weigh-ins (an S400 weight packet waiting for its impedance
packet) after the frames that carried them were acknowledged to the gateway. Keeping those frames
here lets a restarted server rebuild the very same state, and lets a corrected bind key recover a
weigh-in whose frames failed authentication minutes ago. Each frame is stored once: a batch the
gateway re-sends (its acknowledgement was lost) is recognised and not fed twice.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from interceptor.ble.frames import Frame, frame_from_json
from interceptor.paths import private_file
from interceptor.store.writer import Writer

RETENTION_S = 1800.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS frames (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    stored REAL NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS frames_stored ON frames (stored);
"""


def identity(frame: Frame) -> str:
    """Same receiver time, same MAC, same payloads: the same frame re-sent."""
    payloads = ",".join(f"{uuid}={data.hex()}" for uuid, data in sorted(frame.service_data.items()))
    return f"{frame.mac}|{round(frame.time * 1e6)}|{payloads}"


def _open(path: Path | None) -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:" if path is None else str(private_file(path)), isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=FULL")  # acknowledged to the gateway means on disk
    connection.executescript(_SCHEMA)
    return connection


def _add(db: sqlite3.Connection, frames: Sequence[Frame], now: float) -> list[bool]:
    fresh = []
    for frame in frames:
        cursor = db.execute(
            "INSERT OR IGNORE INTO frames (identity, stored, body) VALUES (?, ?, ?)",
            (identity(frame), now, json.dumps(frame.to_json(), separators=(",", ":"))))
        fresh.append(cursor.rowcount == 1)
    db.execute("DELETE FROM frames WHERE stored < ?", (now - RETENTION_S,))
    return fresh


def _recent(db: sqlite3.Connection) -> list[Frame]:
    return [frame_from_json(json.loads(body)) for (body,) in db.execute("SELECT body FROM frames ORDER BY id")]


class FrameLog:
    """The frame file, written on its own writer thread (`store.writer`): the event loop never waits
    on its fsync; a batch is acknowledged to the gateway once `add` returned."""

    def __init__(self, path: Path | None) -> None:
        """`path` None keeps it in memory (a one-shot replay has nothing to survive)."""
        self._writer: Writer[sqlite3.Connection] = Writer("ble-frame-log-writer", lambda: _open(path), lambda db: db)

    async def add(self, frames: Sequence[Frame], now: float) -> list[bool]:
        """Store the frames in one transaction; True for each that was not stored before."""
        return await self._writer.write(lambda db: _add(db, frames, now))

    async def recent(self) -> list[Frame]:
        """Everything kept, in the order it arrived."""
        return await self._writer.write(_recent, durable=False)

    def close(self) -> None:
        self._writer.close()
