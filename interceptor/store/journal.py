"""The journal: an SQLite database in WAL mode that is the source of truth for every measurement.

A source acknowledges its device only after `Journal.write` of its weigh-in returned, and a durable
write returns only after SQLite committed with `synchronous=FULL`, i.e. after fsync: a power cut
after the scale got `status 0` loses nothing. Writes run on one writer thread (`store.writer`) in
group commits, so the event loop that also answers DNS never waits on the disk; reads run on their
own connections (`Reader`), in a small thread pool for the server (`Journal.read`) or directly in a
command-line process (`Journal.reader`). A measurement's `identity` (source, device, kind, weigh-in
second) is unique, so a weigh-in the scale re-sends is stored once. Sinks (InfluxDB, MQTT) are
projections fed by the outbox, and can be rebuilt from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from interceptor.model import DeviceState, Measurement, Metric, Reading, utc_from_unix
from interceptor.store import measurements as rows
from interceptor.store import outbox
from interceptor.store.database import JournalError, open_reader, open_writer
from interceptor.store.integrity import JournalDamaged, damaged_message, is_damage
from interceptor.store.measurements import UNASSIGNED, Filter
from interceptor.store.outbox import Backlog, DeviceReport, OutboxBatch, Renderer
from interceptor.store.writer import Writer

__all__ = ["UNASSIGNED", "Backlog", "DeviceReport", "Filter", "Journal", "JournalError", "NewMeasurement",
           "OutboxBatch", "Reader", "Renderer", "Stored", "Tx", "reader_of"]

log = logging.getLogger(__name__)

T = TypeVar("T")

EVERYTHING = Filter()

Position = tuple[float, int]
"""Where a walk through the history stands: (taken_at as Unix time, id) of the last weigh-in done."""
FIRST: Position = (float("-inf"), 0)
# Reader threads the server keeps (web page, sinks' delivery); SQLite readers never block each other.
READER_THREADS = 2
# Rows per statement when a caller hands over many ids (SQLite caps variables per statement).
IDS_PER_QUERY = 500
# How long bookkeeping waits for a weigh-in's commit to ride along with before it is written alone.
LATER_DELAY_S = 0.5


@dataclass(frozen=True)
class NewMeasurement:
    """What the pipeline decided about a reading: who (and how that was decided), and which metrics."""

    reading: Reading
    user: str | None
    metrics: dict[str, Metric]
    refusals: dict[str, str]
    assignment: str = "none"  # "device" | "weight" | "manual" | "import" | "none"


class Stored:
    """A reading's place in the journal: `created`, or False when its identity was there already (a
    re-sent weigh-in). Its `measurement` is made when first asked for: an import needs only the id."""

    __slots__ = ("_build", "_measurement", "created", "id")

    def __init__(self, measurement_id: int, created: bool, build: Callable[[], Measurement]) -> None:
        self.id = measurement_id
        self.created = created
        self._build = build
        self._measurement: Measurement | None = None

    @property
    def measurement(self) -> Measurement:
        if self._measurement is None:
            self._measurement = self._build()
        return self._measurement


def _new_measurement(item: NewMeasurement, identity: str, measurement_id: int) -> Measurement:
    reading = item.reading
    return Measurement(
        id=measurement_id, identity=identity, kind=reading.kind, source=reading.source, device_id=reading.device_id,
        device_model=reading.device_model, user=item.user, assignment=item.assignment, taken_at=reading.taken_at,
        received_at=reading.received_at, readings=dict(reading.values), metrics=dict(item.metrics),
        refusals=dict(item.refusals), raw=dict(reading.raw),
    )


_DEVICE_COLUMNS = ("d.device_id, source, model, firmware, battery_pct, manufacturing_id, first_seen, last_seen,"
                   " address, coalesce(frames, 0), rssi_dbm, heard_by")
_DEVICES = "devices d LEFT JOIN device_radio r USING (device_id)"


def _device(row: tuple) -> DeviceState:
    (device_id, source, model, firmware, battery, manufacturing_id, first_seen, last_seen, address, frames, rssi,
     heard_by) = row
    return DeviceState(
        device_id=device_id, source=source, model=model, firmware=firmware, battery_pct=battery,
        manufacturing_id=manufacturing_id, first_seen=utc_from_unix(first_seen), last_seen=utc_from_unix(last_seen),
        address=address, frames=frames, rssi_dbm=rssi, heard_by=heard_by,
    )


class Reader:
    """Queries over one connection; iterators stream, so a caller holds one row at a time."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._streams: weakref.WeakSet[Generator[tuple, None, None]] = weakref.WeakSet()

    def _stream(self, stream: Generator[tuple, None, None]) -> Generator[tuple, None, None]:
        """A row stream, remembered (weakly) so that `close_streams` can end it before its connection."""
        self._streams.add(stream)
        return stream

    def close_streams(self) -> None:
        """End the row streams still open. A caller stopped by an exception (a reader gone at
        `| head`) leaves its stream to be finalised after the connection closed, when closing its
        cursor fails and Python prints that on stderr; closed first, the cursor closes cleanly."""
        for stream in list(self._streams):
            stream.close()

    # -- measurements ---------------------------------------------------------------------------

    def measurements(self, where: Filter = EVERYTHING, *, limit: int | None = None,
                     newest_first: bool = False) -> Iterator[Measurement]:
        """Oldest first (unless `newest_first`); `limit` keeps the newest ones."""
        return map(rows.measurement, self._stream(rows.select_rows(self.db, rows.COLUMNS, where, limit=limit,
                                                                   newest_first=newest_first)))

    def measurement_rows(self, where: Filter = EVERYTHING, *, limit: int | None = None) -> Iterator[tuple]:
        """Raw `measurements.COLUMNS` rows, for callers that render them without building objects."""
        return self._stream(rows.select_rows(self.db, rows.COLUMNS, where, limit=limit))

    def measurement(self, measurement_id: int) -> Measurement | None:
        row = self.db.execute(f"SELECT {rows.COLUMNS} FROM measurements WHERE id = ?", (measurement_id,)).fetchone()
        return None if row is None else rows.measurement(row)

    def measurements_by_id(self, ids: Iterable[int]) -> dict[int, Measurement]:
        found: dict[int, Measurement] = {}
        wanted = list(ids)
        for start in range(0, len(wanted), IDS_PER_QUERY):
            chunk = wanted[start:start + IDS_PER_QUERY]
            query = f"SELECT {rows.COLUMNS} FROM measurements WHERE id IN ({','.join('?' * len(chunk))})"
            found.update((row[0], rows.measurement(row)) for row in self.db.execute(query, chunk))
        return found

    def last_id(self) -> int:
        return int(self.db.execute("SELECT coalesce(max(id), 0) FROM measurements").fetchone()[0])

    def measurements_after(self, last_id: int) -> Iterator[Measurement]:
        """Measurements stored after `last_id`, in the order they were stored."""
        return map(rows.measurement, self.db.execute(
            f"SELECT {rows.COLUMNS} FROM measurements WHERE id > ? ORDER BY id", (last_id,)))

    def count(self, where: Filter = EVERYTHING) -> int:
        clause, parameters = where.where()
        return int(self.db.execute(f"SELECT count(*) FROM measurements {clause}", parameters).fetchone()[0])

    def page(self, where: Filter, *, after: Position = FIRST, limit: int = 1000) -> list[Position]:
        """The next `limit` weigh-ins after `after`, oldest first, as (taken_at, id): long jobs
        (recompute, Garmin uploads) walk a history in bounded chunks with it. Pages follow time,
        not ids, so the person's, the device's or the time index serves each page where it left
        off; in id order SQLite sorted the person's whole history for every page (recompute of
        250,000 weigh-ins took 155 s, growing with the square of the history)."""
        clause, parameters = where.where()
        clause = f"{clause} AND (taken_at, id) > (?, ?)" if clause else "WHERE (taken_at, id) > (?, ?)"
        return self.db.execute(f"SELECT taken_at, id FROM measurements {clause} ORDER BY taken_at, id LIMIT ?",
                               [*parameters, *after, limit]).fetchall()

    def recent_weights(self, user: str, limit: int = 5) -> list[float]:
        """The person's latest weights, newest first."""
        found = self.db.execute(
            "SELECT json_extract(readings, '$.weight_kg') FROM measurements"
            " WHERE user = ? AND kind = 'body' AND json_extract(readings, '$.weight_kg') IS NOT NULL"
            " ORDER BY taken_at DESC LIMIT ?",
            (user, limit),
        ).fetchall()
        return [float(row[0]) for row in found]

    def latest_weight(self, user: str) -> float | None:
        weights = self.recent_weights(user, 1)
        return weights[0] if weights else None

    def reading_of(self, measurement_id: int) -> tuple[Reading, str] | None:
        """The reading as the device reported it and how its person was decided, to decide again."""
        row = self.db.execute(f"SELECT {rows.READING_COLUMNS}, assignment FROM measurements WHERE id = ?",
                              (measurement_id,)).fetchone()
        return None if row is None else (rows.reading(row[:-1]), row[-1])

    # -- devices --------------------------------------------------------------------------------

    def device(self, device_id: str) -> DeviceState | None:
        row = self.db.execute(f"SELECT {_DEVICE_COLUMNS} FROM {_DEVICES} WHERE d.device_id = ?",
                              (device_id,)).fetchone()
        return None if row is None else _device(row)

    def devices(self, source: str | None = None) -> list[DeviceState]:
        """Every device (or every device of `source`), the latest heard first."""
        clause, parameters = ("WHERE source = ?", (source,)) if source is not None else ("", ())
        return [_device(row) for row in self.db.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM {_DEVICES} {clause} ORDER BY last_seen DESC", parameters)]

    def device_reports(self, since: datetime | None = None) -> Iterator[DeviceReport]:
        """Device history (battery, firmware over time), oldest first, streamed."""
        for row in self.db.execute(
            "SELECT h.id, h.device_id, d.source, d.model, h.seen_at, h.firmware, h.battery_pct"
            " FROM device_history h JOIN devices d USING (device_id) WHERE h.seen_at >= ? ORDER BY h.seen_at, h.id",
            (since.timestamp() if since else 0.0,),
        ):
            yield DeviceReport(row[0], row[1], row[2], row[3], utc_from_unix(row[4]), row[5], row[6])

    # -- outbox ---------------------------------------------------------------------------------

    def outbox_batch(self, sink: str, limit: int, now: float, after: int = 0) -> OutboxBatch | None:
        return outbox.batch(self.db, sink, limit, now, after)

    def outbox_size(self, sink: str) -> int:
        return outbox.size(self.db, sink)

    def outbox_next_attempt(self, sink: str) -> float | None:
        return outbox.next_attempt(self.db, sink)

    def backlog(self, sink: str) -> Backlog:
        return outbox.backlog(self.db, sink)

    def outbox_payloads(self, sink: str) -> Iterator[str]:
        """What `sink` is still owed, oldest first, streamed."""
        return outbox.payloads(self.db, sink)

    @contextlib.contextmanager
    def consistent(self) -> Iterator[None]:
        """Every query inside sees the journal as it was at the first one (one read transaction):
        without it each query sees the latest commit, and a writer may commit between two."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    # -- small durable facts --------------------------------------------------------------------

    def meta_get(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])


@contextlib.contextmanager
def reader_of(path: Path) -> Iterator[Reader]:
    """A reader on a connection of its own over an existing journal, with no writer: for commands
    that only look (`measurements list`, `doctor`) and must not create or change anything."""
    connection = open_reader(path)
    reader = Reader(connection)
    try:
        yield reader
    finally:
        reader.close_streams()
        connection.close()


class Tx(Reader):
    """What a writer job gets: every query of `Reader`, plus the writes, inside the group's transaction."""

    def __init__(self, db: sqlite3.Connection, sinks: Mapping[str, Renderer]) -> None:
        super().__init__(db)
        self.sinks = dict(sinks)
        self.queued = False  # an item was queued for a sink since the last commit
        self._noted: dict[str, list] | None = None  # devices seen, by id, while `devices_noted` runs

    def _enqueue(self, item: str, item_id: int, render: Callable[[Renderer], str | None],
                 retract: Callable[[Renderer], dict[str, str] | None] | None = None) -> None:
        if outbox.enqueue(self.db, self.sinks, item, item_id, render, retract):
            self.queued = True

    # -- measurements ---------------------------------------------------------------------------

    def insert(self, items: Iterable[NewMeasurement]) -> list[Stored]:
        """Existing identities are returned as they were stored; each reading's device is marked seen."""
        results = []
        for item in items:
            reading = item.reading
            row = rows.new_row(reading, item.user, item.assignment, item.metrics, item.refusals)
            results.append(self._insert(row, lambda new_id, item=item, identity=row.identity:
                                        _new_measurement(item, identity, new_id)))
        return results

    def insert_row(self, row: rows.NewRow) -> Stored:
        """`insert` of a row prepared before the job (an import's): it must be `composed`."""
        return self._insert(row, lambda new_id: rows.stored_measurement(row, new_id))

    def _insert(self, row: rows.NewRow, build: Callable[[int], Measurement]) -> Stored:
        """`build(id)`: the measurement the row became, made only when asked for (sinks, callers)."""
        cursor = self.db.execute(rows.INSERT, row)
        self._device_seen(row.device_id, row.source, row.device_model, row.received_at)
        if cursor.rowcount == 1:  # what was just written, without reading it back
            new_id = int(cursor.lastrowid or 0)
            stored = Stored(new_id, True, lambda: build(new_id))
            if self.sinks:
                measurement = stored.measurement
                self._enqueue("measurement", measurement.id, lambda sink: sink.measurement(measurement, self))
            return stored
        found = self.db.execute(f"SELECT {rows.COLUMNS} FROM measurements WHERE identity = ?",
                                (row.identity,)).fetchone()
        return Stored(found[0], False, lambda: rows.measurement(found))

    def revise(self, measurement_id: int, item: NewMeasurement) -> Measurement:
        """Store a new decision (person, metrics) for a stored weigh-in and queue it for every sink,
        with the old point retracted first where the new one would not overwrite it."""
        old = self.measurement(measurement_id)
        if old is None:
            raise KeyError(measurement_id)
        self.db.execute(
            "UPDATE measurements SET user = ?, assignment = ?, metrics = ?, refusals = ? WHERE id = ?",
            (item.user, item.assignment, rows.metrics_text(item.metrics), rows.refusals_text(item.refusals),
             measurement_id),
        )
        new = old.model_copy(update={"user": item.user, "assignment": item.assignment,
                                     "metrics": dict(item.metrics), "refusals": dict(item.refusals)})
        self._enqueue("measurement", measurement_id, lambda sink: sink.revision(old, new, self),
                      lambda sink: sink.retraction(old, new))
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
        report: bool = False,
    ) -> None:
        """Note what the device said about itself; battery and firmware are kept as history too, and
        told to the sinks. `report`: so is this moment without them (a gateway's "still here", which
        Home Assistant shows as last seen)."""
        when = seen_at.timestamp()
        self._upsert_device(device_id, source, model, firmware, battery_pct, manufacturing_id, when, when)
        if firmware is None and battery_pct is None and not report:
            return
        cursor = self.db.execute(
            "INSERT INTO device_history (device_id, seen_at, firmware, battery_pct) VALUES (?, ?, ?, ?)",
            (device_id, when, firmware, battery_pct),
        )
        if self.sinks:
            row = self.db.execute("SELECT source, model FROM devices WHERE device_id = ?", (device_id,)).fetchone()
            report = DeviceReport(int(cursor.lastrowid or 0), device_id, row[0], row[1], seen_at, firmware,
                                  battery_pct)
            self._enqueue("device", report.id, lambda sink: sink.device(report, self))

    def _upsert_device(self, device_id: str, source: str, model: str | None, firmware: str | None,
                       battery_pct: float | None, manufacturing_id: str | None, first: float, last: float) -> None:
        self.db.execute(
            "INSERT INTO devices (device_id, source, model, firmware, battery_pct, manufacturing_id,"
            " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (device_id) DO UPDATE SET"
            " model = coalesce(excluded.model, model), firmware = coalesce(excluded.firmware, firmware),"
            " battery_pct = coalesce(excluded.battery_pct, battery_pct),"
            " manufacturing_id = coalesce(excluded.manufacturing_id, manufacturing_id),"
            " first_seen = min(first_seen, excluded.first_seen), last_seen = max(last_seen, excluded.last_seen)",
            (device_id, source, model, firmware, battery_pct, manufacturing_id, first, last),
        )

    def record_radio(self, device_id: str, *, address: str | None = None, rssi_dbm: int | None = None,
                     heard_by: str | None = None, frames: int = 0) -> None:
        """Note what the radio link said about a device already in `devices` (a row for anything else
        would let frames from any MAC grow the table): `frames` adds up, the rest is the latest known."""
        self.db.execute(
            "INSERT INTO device_radio (device_id, address, rssi_dbm, heard_by, frames)"
            " SELECT ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM devices WHERE device_id = ?)"
            " ON CONFLICT (device_id) DO UPDATE SET address = coalesce(excluded.address, address),"
            " rssi_dbm = coalesce(excluded.rssi_dbm, rssi_dbm), heard_by = coalesce(excluded.heard_by, heard_by),"
            " frames = frames + excluded.frames",
            (device_id, address, rssi_dbm, heard_by, frames, device_id),
        )

    def forget_device(self, device_id: str) -> None:
        """Remove a device and its history: a bounded set of devices makes room for a new one."""
        for table in ("devices", "device_radio", "device_history"):
            self.db.execute(f"DELETE FROM {table} WHERE device_id = ?", (device_id,))

    def _device_seen(self, device_id: str, source: str, model: str | None, when: float) -> None:
        """A reading's device was seen at `when` (Unix time): now, or noted for the end of `devices_noted`."""
        noted = self._noted
        if noted is None:
            self._upsert_device(device_id, source, model, None, None, None, when, when)
            return
        seen = noted.get(device_id)
        if seen is None:
            noted[device_id] = [source, model, when, when]
            return
        if model is not None:  # the latest model named wins, as one update after another
            seen[1] = model
        seen[2] = min(seen[2], when)
        seen[3] = max(seen[3], when)

    @contextlib.contextmanager
    def devices_noted(self) -> Iterator[None]:
        """Within the block, the devices of inserted readings are noted, and each is written once when
        it ends, with its earliest and latest moments: a chunk of an import (500 weigh-ins of a few
        devices) updates a few rows, not 500. The rows come out as the updates one by one would leave
        them (source of the first, latest model named, earliest and latest moments)."""
        self._noted = {}
        try:
            yield
            for device_id, (source, model, first, last) in self._noted.items():
                self._upsert_device(device_id, source, model, None, None, None, first, last)
        finally:
            self._noted = None

    # -- outbox ---------------------------------------------------------------------------------

    def outbox_delivered(self, sink: str, last_id: int) -> None:
        """Settle every item of `sink` up to `last_id`: exactly the batch `outbox_batch` returned."""
        outbox.delivered(self.db, sink, last_id)

    def outbox_failed(self, batch: OutboxBatch, error: str, next_attempt: float) -> None:
        outbox.failed(self.db, batch, error, next_attempt)

    # -- small durable facts --------------------------------------------------------------------

    def meta_set(self, key: str, value: str) -> None:
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = ?",
                        (key, value, value))

    def next_in_sequence(self, key: str) -> int:
        """The next value of a durable counter (1, 2, ...): ordered like the transactions that take it."""
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, '0') ON CONFLICT (key) DO NOTHING", (key,))
        row = self.db.execute("UPDATE meta SET value = CAST(value AS INTEGER) + 1 WHERE key = ? RETURNING value",
                              (key,)).fetchone()
        return int(row[0])

    def meta(self, key: str, default: str) -> str:
        """Read `key`, storing `default` the first time, so the value is stable from then on."""
        self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))
        return str(self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])


class Journal:
    """The journal file with its writer thread and the server's reader threads.

    `sinks` are the sinks configured now, by name: each new item is queued for each of them."""

    def __init__(self, path: Path, sinks: Mapping[str, Renderer] | None = None) -> None:
        self.path = path
        self.sinks: dict[str, Renderer] = dict(sinks or {})
        self._listeners: list[tuple[asyncio.AbstractEventLoop, Callable[[], None]]] = []
        self._later: list[tuple[Callable[[Tx], object], str]] = []
        self._later_timer: asyncio.TimerHandle | None = None
        self._tx: Tx | None = None
        self._writer: Writer[Tx] = Writer(f"journal-writer:{path.name}", lambda: open_writer(path), self._wrap,
                                          after_commit=self._committed)
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self.damage: str | None = None  # what is wrong with the file, once something found it damaged

    def _wrap(self, db: sqlite3.Connection) -> Tx:
        self._tx = Tx(db, self.sinks)
        return self._tx

    def _committed(self) -> None:
        """On the writer thread, after each commit: wake the sinks if something was queued for them."""
        if self._tx is None or not self._tx.queued:
            return
        self._tx.queued = False
        for loop, callback in list(self._listeners):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody to wake
                loop.call_soon_threadsafe(callback)

    def on_queued(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the running event loop after each commit that queued items for sinks."""
        self._listeners.append((asyncio.get_running_loop(), callback))

    # -- writing --------------------------------------------------------------------------------

    def mark_damaged(self, problem: str) -> JournalDamaged:
        """From now on every write is refused (JournalDamaged, returned for the caller to raise): a
        weigh-in must not be acknowledged into a file that cannot keep it. Logged once."""
        if self.damage is None:
            self.damage = problem
            log.error("%s", damaged_message(self.path, problem))
        return JournalDamaged(damaged_message(self.path, self.damage))

    @contextlib.contextmanager
    def _refusing_if_damaged(self) -> Iterator[None]:
        if self.damage is not None:
            raise self.mark_damaged(self.damage)
        try:
            yield
        except sqlite3.DatabaseError as error:
            if is_damage(error):
                raise self.mark_damaged(str(error)) from None
            raise

    async def write(self, job: Callable[[Tx], T], *, durable: bool = True) -> T:
        """Run `job` on the writer thread in the next group commit; `durable`: fsynced on return."""
        with self._refusing_if_damaged():
            return await self._writer.write(self._with_later(job), durable=durable)

    def call(self, job: Callable[[Tx], T], *, durable: bool = True) -> T:
        """`write` for a command-line caller without an event loop: blocks until committed."""
        with self._refusing_if_damaged():
            return self._writer.call(self._with_later(job), durable=durable)

    def write_later(self, job: Callable[[Tx], object], what: str) -> None:
        """Bookkeeping nobody waits for (a device's battery, last seen): it rides along with the next
        write, or is written on its own within `LATER_DELAY_S`, without fsync; a failure is logged."""
        self._later.append((job, what))
        if self._later_timer is None:
            self._later_timer = asyncio.get_running_loop().call_later(LATER_DELAY_S, self.flush_later)

    def flush_later(self) -> None:
        """Queue the waiting bookkeeping now (on the event loop, before `close` at shut-down)."""
        if self._later_timer is not None:
            self._later_timer.cancel()
            self._later_timer = None
        if self.damage is not None:  # said once already; bookkeeping is not worth a line each
            self._later.clear()
        if self._later:
            self._writer.submit(self._with_later(lambda tx: None), durable=False)

    def _with_later(self, job: Callable[[Tx], T]) -> Callable[[Tx], T]:
        if not self._later:
            return job
        later, self._later = self._later, []

        def both(tx: Tx) -> T:
            for earlier, what in later:  # each in a savepoint of its own: its failure costs only itself
                tx.db.execute("SAVEPOINT later")
                try:
                    earlier(tx)
                except Exception as error:
                    tx.db.execute("ROLLBACK TO later")
                    log.error("could not record %s in the journal: %s", what, error)
                tx.db.execute("RELEASE later")
            return job(tx)

        return both

    async def insert(self, items: list[NewMeasurement]) -> list[Stored]:
        return await self.write(lambda tx: tx.insert(items))

    # -- reading --------------------------------------------------------------------------------

    def _thread_reader(self) -> Reader:
        reader = getattr(self._local, "reader", None)
        if reader is None:
            connection = open_reader(self.path)
            with self._lock:
                self._reader_connections.append(connection)
            reader = self._local.reader = Reader(connection)
        return reader

    async def read(self, query: Callable[[Reader], T]) -> T:
        """Run `query` on a reader thread: the event loop never waits on the disk, even to read."""
        if self._readers is None:
            self._readers = ThreadPoolExecutor(READER_THREADS, thread_name_prefix="journal-reader")
        return await asyncio.get_running_loop().run_in_executor(
            self._readers, lambda: query(self._thread_reader()))

    def reader(self) -> contextlib.AbstractContextManager[Reader]:
        """A reader on a connection of its own, for this thread (the command line)."""
        return reader_of(self.path)

    def close(self) -> None:
        """Commit what is queued, then close every connection."""
        if self._later:
            self._writer.submit(self._with_later(lambda tx: None), durable=False)
        self._writer.close()
        if self._readers is not None:
            self._readers.shutdown(wait=True)
        with self._lock:
            for connection in self._reader_connections:
                connection.close()
            self._reader_connections.clear()
