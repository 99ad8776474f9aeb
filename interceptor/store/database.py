"""The journal file: its schema, how its connections are opened, and the error a user sees.

One writer connection (on the writer thread, `store.writer`) and any number of reader connections
(the CLI, the web page, the sinks' delivery) share the file in WAL mode: readers never wait for the
writer and see only committed weigh-ins.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from interceptor.paths import private_file

SCHEMA_VERSION = 3

# Indexes follow what readers filter on: person and time (the web page, `measurements list --user`,
# assignment by recent weight, and unassigned weigh-ins, which are user NULL), time alone (`list`,
# `sync`), device and time (the devices page), and the weigh-ins still waiting for a person (the web
# page's unclaimed list and its banner, which must not walk the hidden guests' weigh-ins).
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
CREATE INDEX IF NOT EXISTS measurements_by_device ON measurements (device_id, taken_at);
CREATE INDEX IF NOT EXISTS measurements_unclaimed ON measurements (taken_at, id)
    WHERE user IS NULL AND assignment = 'none' AND kind = 'body';
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
-- What a radio link says about a device, apart from what the device says about itself: a gateway's
-- client address and the frames it delivered, a BLE scale's signal when last heard and by which
-- gateway. A table of its own, so journals written before it need no migration.
CREATE TABLE IF NOT EXISTS device_radio (
    device_id TEXT PRIMARY KEY,
    address TEXT,
    rssi_dbm INTEGER,
    heard_by TEXT,
    frames INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS device_history (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    seen_at REAL NOT NULL,
    firmware TEXT,
    battery_pct REAL
);
CREATE INDEX IF NOT EXISTS device_history_by_device ON device_history (device_id, seen_at);
CREATE INDEX IF NOT EXISTS device_history_by_time ON device_history (seen_at);
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
CREATE TABLE IF NOT EXISTS imports (
    identity TEXT PRIMARY KEY,
    measurement_id INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS garmin_uploads (
    person TEXT NOT NULL,
    measurement_id INTEGER NOT NULL,
    digest TEXT NOT NULL,
    uploaded_at REAL NOT NULL,
    PRIMARY KEY (person, measurement_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


# SQLite's primary result codes for a damaged file (https://www.sqlite.org/rescode.html).
SQLITE_CORRUPT = 11
SQLITE_NOTADB = 26


class JournalError(Exception):
    """The journal cannot be opened or written; the message says which file and why."""


def is_damage(error: BaseException) -> bool:
    """Does this SQLite error say the file is damaged (rather than busy, full or read-only)?"""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.DatabaseError) and code is not None and code & 0xFF in (
        SQLITE_CORRUPT, SQLITE_NOTADB)


def _connect(path: Path) -> sqlite3.Connection:
    # check_same_thread=False: a connection is still used by one thread at a time (the writer's
    # own, or one reader thread), but it may be closed by the thread that shuts the journal down.
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


def open_writer(path: Path) -> sqlite3.Connection:
    """The one connection that writes: WAL, fsync on durable commits, schema created or upgraded."""
    try:
        connection = _connect(private_file(path))
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=FULL")
            connection.execute("PRAGMA foreign_keys=ON")
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise JournalError(
                    f"{path}: written by a newer interceptor (schema {version} > {SCHEMA_VERSION}); upgrade first"
                )
            connection.executescript(_SCHEMA)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except BaseException:
            connection.close()
            raise
    except sqlite3.DatabaseError as error:
        hint = ": it is damaged; `interceptor journal recover` copies what can be read into a new journal" if (
            is_damage(error)) else ""
        raise JournalError(f"{path}: cannot open the journal: {error}{hint}") from None
    except OSError as error:
        raise JournalError(f"{path.parent}: cannot create the data directory: {error}") from None
    return connection


def open_reader(path: Path) -> sqlite3.Connection:
    """A read-only view of committed data (WAL: it never blocks, and never blocks the writer)."""
    try:
        connection = _connect(path)
        connection.execute("PRAGMA query_only=ON")
    except sqlite3.DatabaseError as error:
        raise JournalError(f"{path}: cannot open the journal: {error}") from None
    return connection
