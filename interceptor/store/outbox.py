"""What each sink (InfluxDB, MQTT) still owes: items queued in the same transaction as the change.

An item is rendered for its sink when it is queued, so delivering is reading and sending, nothing
more. A sink drains its own items in journal order; a failed head is retried before anything newer.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from interceptor.model import Measurement

if TYPE_CHECKING:
    from interceptor.store.journal import Tx

# `last_error` is shown to the user (health page, doctor): bounded, and already free of secrets.
MAX_ERROR_CHARS = 500


@dataclass(frozen=True)
class DeviceReport:
    """One row of device history with the device's identity, for the sinks' device state."""

    id: int
    device_id: str
    source: str
    model: str | None
    seen_at: datetime
    firmware: str | None
    battery_pct: float | None


class Renderer(Protocol):
    """Turns journal items into what one sink sends (InfluxDB: a line of line protocol; MQTT: the
    states the change leaves behind). Called inside the transaction that made the change, with it as
    `tx`: a sink of states reads what is true after the change (a person's now-latest weigh-in)."""

    def measurement(self, measurement: Measurement, tx: Tx) -> str | None:
        """A weigh-in or room reading just stored."""

    def revision(self, old: Measurement, new: Measurement, tx: Tx) -> str | None:
        """A stored weigh-in decided again (another person, recomputed metrics)."""

    def device(self, report: DeviceReport, tx: Tx) -> str | None:
        """What a device said about itself (battery, firmware)."""

    def retraction(self, old: Measurement, new: Measurement) -> dict[str, str] | None:
        """What identifies `old` in the sink, when `new` will not simply overwrite it; else None."""


@dataclass(frozen=True)
class OutboxBatch:
    """The oldest items one sink owes, in journal order. `retracts` name points to remove first (a
    weigh-in moved to another person); `attempts` counts failed tries of this head."""

    sink: str
    first_id: int
    last_id: int
    size: int
    attempts: int
    payloads: list[str]
    retracts: list[dict[str, str]]


def enqueue(
    db: sqlite3.Connection,
    sinks: dict[str, Renderer],
    item: str,
    item_id: int,
    render: Callable[[Renderer], str | None],
    retract: Callable[[Renderer], dict[str, str] | None] | None = None,
) -> int:
    """Queue one item for each of `sinks` that has something to send or take back (a sink's queue
    counts only what it owes: a Garmin account is owed its person's weigh-ins, not the household's);
    returns how many rows were queued."""
    now = time.time()
    queued = 0
    for name, renderer in sinks.items():
        removed = retract(renderer) if retract is not None else None
        payload = render(renderer)
        if payload is None and not removed:
            continue
        db.execute(
            "INSERT INTO outbox (sink, item, item_id, enqueued_at, retract, payload) VALUES (?, ?, ?, ?, ?, ?)",
            (name, item, item_id, now, json.dumps(removed) if removed else None, payload),
        )
        queued += 1
    return queued


def batch(db: sqlite3.Connection, sink: str, limit: int, now: float, after: int = 0) -> OutboxBatch | None:
    """Up to `limit` items after id `after`; None while the head waits for its retry time."""
    rows = db.execute(
        "SELECT id, attempts, next_attempt, payload, retract FROM outbox WHERE sink = ? AND id > ?"
        " ORDER BY id LIMIT ?",
        (sink, after, limit),
    ).fetchall()
    if not rows or rows[0][2] > now:
        return None
    return OutboxBatch(
        sink=sink, first_id=rows[0][0], last_id=rows[-1][0], size=len(rows), attempts=rows[0][1],
        payloads=[row[3] for row in rows if row[3] is not None],
        retracts=[json.loads(row[4]) for row in rows if row[4] is not None],
    )


def delivered(db: sqlite3.Connection, sink: str, last_id: int) -> None:
    db.execute("DELETE FROM outbox WHERE sink = ? AND id <= ?", (sink, last_id))


def failed(db: sqlite3.Connection, failed_batch: OutboxBatch, error: str, next_attempt: float) -> None:
    db.execute(
        "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
        " WHERE sink = ? AND id BETWEEN ? AND ?",
        (next_attempt, error[:MAX_ERROR_CHARS], failed_batch.sink, failed_batch.first_id, failed_batch.last_id),
    )


def payloads(db: sqlite3.Connection, sink: str) -> Iterator[str]:
    for (payload,) in db.execute("SELECT payload FROM outbox WHERE sink = ? AND payload IS NOT NULL ORDER BY id",
                                 (sink,)):
        yield payload


def size(db: sqlite3.Connection, sink: str) -> int:
    return int(db.execute("SELECT count(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()[0])


def next_attempt(db: sqlite3.Connection, sink: str) -> float | None:
    first = db.execute("SELECT next_attempt FROM outbox WHERE sink = ? ORDER BY id LIMIT 1", (sink,)).fetchone()
    return None if first is None else float(first[0])


@dataclass(frozen=True)
class Backlog:
    """A sink's queue as the health page and `doctor` show it."""

    sink: str
    items: int
    oldest_enqueued_at: float | None
    attempts: int
    last_error: str | None


def backlog(db: sqlite3.Connection, sink: str) -> Backlog:
    count = size(db, sink)
    head = db.execute("SELECT enqueued_at, attempts, last_error FROM outbox WHERE sink = ? ORDER BY id LIMIT 1",
                      (sink,)).fetchone()
    if head is None:
        return Backlog(sink, 0, None, 0, None)
    return Backlog(sink, count, float(head[0]), int(head[1]), head[2])
