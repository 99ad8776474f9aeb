"""The journal: an SQLite database in WAL mode that is the source of truth for every measurement.

A source acknowledges its device only after `Journal.insert` returned, and `insert` returns only
after SQLite committed with `synchronous=FULL`, i.e. after fsync: a power cut after the scale got
`status 0` loses nothing. A measurement's `identity` (source, device, kind, weigh-in second) is
unique, so a weigh-in the scale re-sends is stored once. Sinks (InfluxDB, MQTT) are projections
that can be rebuilt from here.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from interceptor.model import DeviceState, Measurement, Metric, Reading, utc_from_unix

SCHEMA_VERSION = 2
# Seconds a device's self-report may wait for a transaction to ride along with (see record_device).
DEVICE_FLUSH_DELAY = 0.5
# What `measurements(user=...)` takes to mean "the weigh-ins nobody is assigned to".
UNASSIGNED = "unassigned"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    id INTEGER PRIMARY KEY,
    identity TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    device_id TEXT NOT NULL,
    device_model TEXT,
    device_user_id TEXT,
    user TEXT,
    assignment TEXT NOT NULL DEFAULT 'none',
    taken_at REAL NOT NULL,
    received_at REAL NOT NULL,
    readings TEXT NOT NULL,
    vendor_metrics TEXT NOT NULL,
    metrics TEXT NOT NULL,
    refusals TEXT NOT NULL,
    raw TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_by_time ON measurements (taken_at);
CREATE INDEX IF NOT EXISTS measurements_by_user ON measurements (user, taken_at);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    model TEXT,
    firmware TEXT,
    battery_pct REAL,
    manufacturing_id TEXT,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS device_history (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    firmware TEXT,
    battery_pct REAL
);
CREATE INDEX IF NOT EXISTS device_history_by_device ON device_history (device_id, seen_at);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    sink TEXT NOT NULL,
    item TEXT NOT NULL,
    item_id INTEGER NOT NULL,
    enqueued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    retract TEXT,
    payload TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_sink ON outbox (sink, id);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


class JournalError(Exception):
    """The journal cannot be opened or written; the message says which file and why."""


@dataclass(frozen=True)
class NewMeasurement:
    """What the pipeline decided about a reading: who (and how that was decided), and which metrics."""

    reading: Reading
    user: str | None
    metrics: dict[str, Metric]
    refusals: dict[str, str]
    assignment: str = "none"  # "device" | "weight" | "manual" | "none"


@dataclass(frozen=True)
class OutboxBatch:
    """The oldest items one sink owes, in journal order, already rendered for that sink when they
    were queued (so delivering is reading and sending, nothing more). `retracts` name points to
    remove first (a weigh-in moved to another person); `attempts` counts failed tries of this head."""

    sink: str
    first_id: int
    last_id: int
    size: int
    attempts: int
    payloads: list[str]
    retracts: list[dict[str, str]]


class Renderer(Protocol):
    """Turns journal items into what one sink sends (InfluxDB: a line of line protocol)."""

    def measurement(self, measurement: Measurement) -> str | None: ...

    def device(self, report: DeviceReport) -> str | None: ...

    def retraction(self, old: Measurement, new: Measurement) -> dict[str, str] | None:
        """What identifies `old` in the sink, when `new` will not simply overwrite it; else None."""


@dataclass(frozen=True)
class DeviceReport:
    """One row of device history with the device's identity, for the `device` InfluxDB measurement."""

    id: int
    device_id: str
    source: str
    model: str | None
    seen_at: datetime
    firmware: str | None
    battery_pct: float | None


@dataclass(frozen=True)
class Stored:
    measurement: Measurement
    created: bool  # False when the identity was already in the journal (a re-sent weigh-in)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


class Journal:
    """One connection, used from the event loop thread only (no threads for I/O, DESIGN.md)."""

    def __init__(self, path: Path, sinks: Mapping[str, Renderer] | None = None) -> None:
        """`sinks` are the sinks configured now, by name: each new item is queued for each of them."""
        self.path = path
        self.sinks: dict[str, Renderer] = dict(sinks or {})
        # Called after a commit that queued items for sinks, so deliveries start at once.
        self.listeners: list[Callable[[], None]] = []
        self._queued = False
        self._pending_devices: list[tuple] = []
        self._device_timer: asyncio.TimerHandle | None = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=True)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.execute("PRAGMA foreign_keys=ON")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{path}: written by a newer interceptor (schema {version} > {SCHEMA_VERSION}); upgrade first"
                )
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.DatabaseError as error:
            raise JournalError(f"{path}: cannot open the journal: {error}") from None
        except OSError as error:
            raise JournalError(f"{path.parent}: cannot create the data directory: {error}") from None

    def close(self) -> None:
        self.flush_devices()
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            pending, self._pending_devices = self._pending_devices, []
            for fields in pending:
                self._upsert_device(self._db, *fields)
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            self._queued = False
            raise
        self._db.execute("COMMIT")
        if self._queued:
            self._queued = False
            for listener in self.listeners:
                listener()

    # -- measurements ---------------------------------------------------------------------------

    def insert(self, items: Iterable[NewMeasurement]) -> list[Stored]:
        """All or nothing, durable on return; existing identities are returned as they were stored.

        Each reading's device is marked as seen in the same transaction (one fsync per request)."""
        results: list[Stored] = []
        with self._transaction() as db:
            for item in items:
                reading = item.reading
                cursor = db.execute(
                    "INSERT INTO measurements (identity, kind, source, device_id, device_model, device_user_id,"
                    " user, assignment, taken_at, received_at, readings, vendor_metrics, metrics, refusals, raw)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (identity) DO NOTHING",
                    (
                        reading.identity, reading.kind, reading.source, reading.device_id, reading.device_model,
                        reading.device_user_id, item.user, item.assignment, reading.taken_at.timestamp(),
                        reading.received_at.timestamp(), _dumps(reading.values), _dumps(reading.vendor_metrics),
                        _dumps({name: metric.model_dump() for name, metric in item.metrics.items()}),
                        _dumps(item.refusals), _dumps(reading.raw),
                    ),
                )
                created = cursor.rowcount == 1
                self._upsert_device(db, reading.device_id, reading.source, reading.received_at.timestamp(),
                                    reading.device_model, None, None, None)
                if created:  # what was just written, without reading it back
                    measurement = Measurement.model_construct(
                        id=int(cursor.lastrowid or 0), identity=reading.identity, kind=reading.kind,
                        source=reading.source, device_id=reading.device_id, device_model=reading.device_model,
                        user=item.user, assignment=item.assignment, taken_at=reading.taken_at,
                        received_at=reading.received_at, readings=dict(reading.values), metrics=dict(item.metrics),
                        refusals=dict(item.refusals), raw=dict(reading.raw),
                    )
                    self._enqueue(db, "measurement", measurement.id, lambda sink, m=measurement: sink.measurement(m))
                else:
                    row = db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE identity = ?", (reading.identity,))
                    measurement = _measurement(row.fetchone())
                results.append(Stored(measurement, created))
        return results

    def measurements(
        self,
        *,
        user: str | None = None,
        since: datetime | None = None,
        kind: str | None = None,
        limit: int | None = None,
    ) -> list[Measurement]:
        """Oldest first; `limit` keeps the newest ones."""
        clauses, parameters = [], []
        if user == UNASSIGNED:
            clauses.append("user IS NULL")
        elif user is not None:
            clauses.append("user = ?")
            parameters.append(user)
        if since is not None:
            clauses.append("taken_at >= ?")
            parameters.append(since.timestamp())
        if kind is not None:
            clauses.append("kind = ?")
            parameters.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT {_COLUMNS} FROM measurements {where} ORDER BY taken_at DESC, id DESC"
        if limit is not None:
            query += f" LIMIT {int(limit)}"
        rows = self._db.execute(query, parameters).fetchall()
        return [_measurement(row) for row in reversed(rows)]

    def latest_weight(self, user: str) -> float | None:
        weights = self.recent_weights(user, 1)
        return weights[0] if weights else None

    def recent_weights(self, user: str, limit: int = 5) -> list[float]:
        """The person's latest weights, newest first."""
        rows = self._db.execute(
            "SELECT json_extract(readings, '$.weight_kg') FROM measurements"
            " WHERE user = ? AND kind = 'body' AND json_extract(readings, '$.weight_kg') IS NOT NULL"
            " ORDER BY taken_at DESC LIMIT ?",
            (user, limit),
        ).fetchall()
        return [float(row[0]) for row in rows]

    def reading_of(self, measurement_id: int) -> Reading | None:
        """The reading as the device reported it, to decide again who and what it is."""
        row = self._db.execute(
            "SELECT source, kind, device_id, device_model, taken_at, received_at, device_user_id, readings,"
            " vendor_metrics, raw FROM measurements WHERE id = ?",
            (measurement_id,),
        ).fetchone()
        if row is None:
            return None
        return Reading(
            source=row[0], kind=row[1], device_id=row[2], device_model=row[3], taken_at=utc_from_unix(row[4]),
            received_at=utc_from_unix(row[5]), device_user_id=row[6], values=json.loads(row[7]),
            vendor_metrics=json.loads(row[8]), raw=json.loads(row[9]),
        )

    def revise(self, measurement_id: int, item: NewMeasurement) -> Measurement:
        """Store a new decision (person, metrics) for a stored weigh-in and queue it for every sink,
        with the old point retracted first where the new one would not overwrite it."""
        with self._transaction() as db:
            old_row = db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE id = ?", (measurement_id,)).fetchone()
            if old_row is None:
                raise KeyError(measurement_id)
            db.execute(
                "UPDATE measurements SET user = ?, assignment = ?, metrics = ?, refusals = ? WHERE id = ?",
                (item.user, item.assignment,
                 _dumps({name: metric.model_dump() for name, metric in item.metrics.items()}),
                 _dumps(item.refusals), measurement_id),
            )
            old = _measurement(old_row)
            new = _measurement(db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE id = ?",
                                          (measurement_id,)).fetchone())
            for name, renderer in self.sinks.items():
                self._enqueue(db, "measurement", measurement_id, lambda r, m=new: r.measurement(m), (name,),
                              renderer.retraction(old, new))
        return new

    # -- devices --------------------------------------------------------------------------------

    def record_device(
        self,
        *,
        device_id: str,
        source: str,
        seen_at: datetime,
        model: str | None = None,
        firmware: str | None = None,
        battery_pct: float | None = None,
        manufacturing_id: str | None = None,
    ) -> None:
        """Note what the device said about itself (kept with the history of battery and firmware).

        Not worth a commit of its own while a scale waits for its reply: the state goes in with the
        next weigh-in's transaction, or within `DEVICE_FLUSH_DELAY` seconds, without fsync; the scale
        re-sends it every session anyway. Without an event loop (the CLI) it is written at once."""
        self._pending_devices.append(
            (device_id, source, seen_at.timestamp(), model, firmware, battery_pct, manufacturing_id)
        )
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush_devices()
            return
        if self._device_timer is None:
            self._device_timer = loop.call_later(DEVICE_FLUSH_DELAY, self.flush_devices)

    def flush_devices(self) -> None:
        if self._device_timer is not None:
            self._device_timer.cancel()
            self._device_timer = None
        if not self._pending_devices:
            return
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction():
                pass  # the transaction writes the pending devices itself
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def device_reports(self, ids: list[int]) -> dict[int, DeviceReport]:
        return self._device_reports(self._db, ids)

    @staticmethod
    def _device_reports(db: sqlite3.Connection, ids: list[int]) -> dict[int, DeviceReport]:
        marks = ",".join("?" * len(ids))
        rows = db.execute(
            "SELECT h.id, h.device_id, d.source, d.model, h.seen_at, h.firmware, h.battery_pct"
            f" FROM device_history h JOIN devices d USING (device_id) WHERE h.id IN ({marks})",
            ids,
        ).fetchall()
        return {row[0]: DeviceReport(row[0], row[1], row[2], row[3], utc_from_unix(row[4]), row[5], row[6])
                for row in rows}

    def _upsert_device(
        self,
        db: sqlite3.Connection, device_id: str, source: str, when: float, model: str | None, firmware: str | None,
        battery_pct: float | None, manufacturing_id: str | None,
    ) -> None:
        db.execute(
            "INSERT INTO devices (device_id, source, model, firmware, battery_pct, manufacturing_id,"
            " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " model = coalesce(excluded.model, model), firmware = coalesce(excluded.firmware, firmware),"
            " battery_pct = coalesce(excluded.battery_pct, battery_pct),"
            " manufacturing_id = coalesce(excluded.manufacturing_id, manufacturing_id),"
            " last_seen = max(last_seen, excluded.last_seen)",
            (device_id, source, model, firmware, battery_pct, manufacturing_id, when, when),
        )
        if firmware is not None or battery_pct is not None:
            cursor = db.execute(
                "INSERT INTO device_history (device_id, seen_at, firmware, battery_pct) VALUES (?, ?, ?, ?)",
                (device_id, when, firmware, battery_pct),
            )
            if self.sinks:
                report = self._device_reports(db, [int(cursor.lastrowid or 0)])
                for identifier, item in report.items():
                    self._enqueue(db, "device", identifier, lambda sink, r=item: sink.device(r))

    def _enqueue(
        self,
        db: sqlite3.Connection,
        item: str,
        item_id: int,
        render: Callable[[Renderer], str | None],
        sinks: Iterable[str] | None = None,
        retract: dict[str, str] | None = None,
    ) -> None:
        now = time.time()
        for name in self.sinks if sinks is None else sinks:
            self._queued = True
            db.execute(
                "INSERT INTO outbox (sink, item, item_id, enqueued_at, retract, payload) VALUES (?, ?, ?, ?, ?, ?)",
                (name, item, item_id, now, _dumps(retract) if retract else None, render(self.sinks[name])),
            )

    def device(self, device_id: str) -> DeviceState | None:
        self.flush_devices()
        row = self._db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE device_id = ?", (device_id,)).fetchone()
        return None if row is None else _device(row)

    def devices(self) -> list[DeviceState]:
        self.flush_devices()
        rows = self._db.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices ORDER BY last_seen DESC").fetchall()
        return [_device(row) for row in rows]

    def measurements_by_id(self, ids: list[int]) -> dict[int, Measurement]:
        marks = ",".join("?" * len(ids))
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE id IN ({marks})", ids).fetchall()
        return {row[0]: _measurement(row) for row in rows}

    # -- outbox: what each sink still owes ----------------------------------------------------

    def outbox_batch(self, sink: str, limit: int, now: float, after: int = 0) -> OutboxBatch | None:
        """Up to `limit` items after id `after`; None while the head waits for its retry time, so a
        sink delivers in journal order and a failed batch is retried before anything newer."""
        rows = self._db.execute(
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

    def outbox_delivered(self, sink: str, last_id: int) -> None:
        """Settle every item of `sink` up to `last_id`: exactly the batch `outbox_due` returned.

        Without fsync: losing this mark in a power cut only means sending the same points again,
        which overwrites them in InfluxDB."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            with self._transaction() as db:
                db.execute("DELETE FROM outbox WHERE sink = ? AND id <= ?", (sink, last_id))
        finally:
            self._db.execute("PRAGMA synchronous=FULL")

    def outbox_failed(self, batch: OutboxBatch, error: str, next_attempt: float) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt = ?, last_error = ?"
                " WHERE sink = ? AND id BETWEEN ? AND ?",
                (next_attempt, error[:500], batch.sink, batch.first_id, batch.last_id),
            )

    def outbox_size(self, sink: str) -> int:
        return int(self._db.execute("SELECT count(*) FROM outbox WHERE sink = ?", (sink,)).fetchone()[0])

    def outbox_next_attempt(self, sink: str) -> float | None:
        row = self._db.execute("SELECT next_attempt FROM outbox WHERE sink = ? ORDER BY id LIMIT 1", (sink,))
        first = row.fetchone()
        return None if first is None else float(first[0])

    def enqueue_everything(self, sink: str, since: datetime | None = None) -> int:
        """Queue every measurement and device report (since a date) again: rebuilds a sink."""
        start = since.timestamp() if since else 0.0
        with self._transaction() as db:
            db.execute("UPDATE outbox SET next_attempt = 0 WHERE sink = ?", (sink,))  # asked for now: no backoff
            rows = db.execute(f"SELECT {_COLUMNS} FROM measurements WHERE taken_at >= ? ORDER BY taken_at, id",
                              (start,)).fetchall()
            for measurement in map(_measurement, rows):
                self._enqueue(db, "measurement", measurement.id, lambda r, m=measurement: r.measurement(m), (sink,))
            device_ids = [row[0] for row in db.execute(
                "SELECT id FROM device_history WHERE seen_at >= ? ORDER BY seen_at, id", (start,))]
            reports = self._device_reports(db, device_ids) if device_ids else {}
            for identifier in device_ids:
                self._enqueue(db, "device", identifier, lambda r, d=reports[identifier]: r.device(d), (sink,))
        return len(rows) + len(device_ids)

    # -- small durable facts --------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def meta_set(self, key: str, value: str) -> None:
        with self._transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                       (key, value, value))

    def meta(self, key: str, default: str) -> str:
        """Read `key`, storing `default` the first time, so the value is stable from then on."""
        with self._transaction() as db:
            db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))
            return str(db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


_COLUMNS = (
    "id, identity, kind, source, device_id, device_model, user, assignment, taken_at, received_at, readings,"
    " metrics, refusals, raw"
)
_DEVICE_COLUMNS = "device_id, source, model, firmware, battery_pct, manufacturing_id, first_seen, last_seen"


def _measurement(row: tuple) -> Measurement:
    (identifier, identity, kind, source, device_id, device_model, user, assignment, taken_at, received_at,
     readings, metrics, refusals, raw) = row
    return Measurement(
        id=identifier,
        identity=identity,
        kind=kind,
        source=source,
        device_id=device_id,
        device_model=device_model,
        user=user,
        assignment=assignment,
        taken_at=utc_from_unix(taken_at),
        received_at=utc_from_unix(received_at),
        readings=json.loads(readings),
        metrics={name: Metric(**value) for name, value in json.loads(metrics).items()},
        refusals=json.loads(refusals),
        raw=json.loads(raw),
    )


def _device(row: tuple) -> DeviceState:
    device_id, source, model, firmware, battery, manufacturing_id, first_seen, last_seen = row
    return DeviceState(
        device_id=device_id,
        source=source,
        model=model,
        firmware=firmware,
        battery_pct=battery,
        manufacturing_id=manufacturing_id,
        first_seen=utc_from_unix(first_seen),
        last_seen=utc_from_unix(last_seen),
    )
