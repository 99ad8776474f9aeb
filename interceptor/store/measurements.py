"""Measurements in the journal: how a row is written, found and turned back into values.

Reads stream: a query yields rows as SQLite produces them, so listing, exporting or recomputing a
decade of weigh-ins costs the memory of one row. Every filter a reader uses is backed by an index
(`store.database`). `json_text` splices the stored JSON columns into the public JSON shape without
parsing them at all. (pydantic's compiled validation is faster than its `model_construct`, so rows
become models the ordinary way.)
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

from interceptor.model import Measurement, Metric, Reading, utc_from_unix

# What `Filter.user` takes to mean "the weigh-ins nobody is assigned to".
UNASSIGNED = "unassigned"
# The `assignment` of a weigh-in marked "not a household member": nobody's, and no longer waiting for anyone.
GUEST = "guest"

COLUMNS = (
    "id, identity, kind, source, device_id, device_model, user, assignment, taken_at, received_at, readings,"
    " metrics, refusals, raw"
)
READING_COLUMNS = (
    "source, kind, device_id, device_model, taken_at, received_at, device_user_id, readings, vendor_metrics, raw"
)

INSERT = (
    "INSERT INTO measurements (identity, kind, source, device_id, device_model, device_user_id, user, assignment,"
    " taken_at, received_at, readings, vendor_metrics, metrics, refusals, raw)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (identity) DO NOTHING"
)


class NewRow(NamedTuple):
    """A weigh-in's columns as `INSERT` writes them, the JSON columns already text: what an import
    prepares before its writer job (in a second process, even: it pickles as a tuple of strings and
    numbers). A row whose person the writer must still decide has empty `metrics` and `refusals`."""

    identity: str
    kind: str
    source: str
    device_id: str
    device_model: str | None
    device_user_id: str | None
    user: str | None
    assignment: str
    taken_at: float
    received_at: float
    readings: str
    vendor_metrics: str
    metrics: str
    refusals: str
    raw: str

    @property
    def composed(self) -> bool:
        return self.metrics != ""


# One encoder for every column: `json.dumps` with arguments builds a new encoder on each call, which
# costs more than encoding a weigh-in's readings. No circular-reference check: a column is a flat
# dict of numbers and strings, or a dict of such dicts, built here.
dumps: Callable[[object], str] = json.JSONEncoder(separators=(",", ":"), allow_nan=False,
                                                  check_circular=False).encode


@dataclass(frozen=True)
class Filter:
    """Which measurements a reader wants; each field maps to an indexed column."""

    user: str | None = None  # a slug, or UNASSIGNED
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    kind: str | None = None
    device_id: str | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        parameters: list[object] = []
        if self.user == UNASSIGNED:
            clauses.append("user IS NULL")
        elif self.user is not None:
            clauses.append("user = ?")
            parameters.append(self.user)
        if self.since is not None:
            clauses.append("taken_at >= ?")
            parameters.append(self.since.timestamp())
        if self.until is not None:
            clauses.append("taken_at < ?")
            parameters.append(self.until.timestamp())
        if self.kind is not None:
            clauses.append("kind = ?")
            parameters.append(self.kind)
        if self.device_id is not None:
            clauses.append("device_id = ?")
            parameters.append(self.device_id)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), parameters


def select_rows(
    db: sqlite3.Connection, columns: str, where: Filter, *, limit: int | None = None, newest_first: bool = False
) -> Generator[tuple, None, None]:
    """Rows in time order (oldest first unless `newest_first`); `limit` keeps the newest ones.

    Close the generator before `db` (`Reader.close_streams`): closing it closes its cursor, which
    fails on a closed connection."""
    clause, parameters = where.where()
    if limit is None:
        order = "DESC" if newest_first else "ASC"
        query = f"SELECT {columns} FROM measurements {clause} ORDER BY taken_at {order}, id {order}"
    else:
        query = (f"SELECT {columns} FROM measurements {clause} ORDER BY taken_at DESC, id DESC"
                 f" LIMIT {int(limit)}")
        if not newest_first:
            query = f"SELECT * FROM ({query}) ORDER BY taken_at ASC, id ASC"
    yield from db.execute(query, parameters)


def measurement(row: tuple) -> Measurement:
    """A `COLUMNS` row as a Measurement."""
    (identifier, identity, kind, source, device_id, device_model, user, assignment, taken_at, received_at,
     readings, metrics, refusals, raw) = row
    return Measurement(
        id=identifier, identity=identity, kind=kind, source=source, device_id=device_id,
        device_model=device_model, user=user, assignment=assignment, taken_at=utc_from_unix(taken_at),
        received_at=utc_from_unix(received_at), readings=json.loads(readings),
        metrics={name: Metric(**value) for name, value in json.loads(metrics).items()},
        refusals=json.loads(refusals), raw=json.loads(raw),
    )


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")


_string = json.JSONEncoder().encode


def json_text(row: tuple) -> str:
    """A `COLUMNS` row as `Measurement.as_json()` would print compactly, without parsing its columns."""
    (identifier, _, kind, source, device_id, device_model, user, assignment, taken_at, received_at,
     readings, metrics, refusals, raw) = row
    return (
        f'{{"id":{identifier},"kind":{_string(kind)},"taken_at":"{_iso(taken_at)}",'
        f'"received_at":"{_iso(received_at)}","source":{_string(source)},"device_id":{_string(device_id)},'
        f'"device_model":{"null" if device_model is None else _string(device_model)},'
        f'"user":{"null" if user is None else _string(user)},"assigned_by":{_string(assignment)},'
        f'"readings":{readings},"metrics":{metrics},"refusals":{refusals},"raw":{raw}}}'
    )


def new_row(reading: Reading, user: str | None, assignment: str, metrics: Mapping[str, Metric] | None,
            refusals: Mapping[str, str] | None) -> NewRow:
    """The row of a decided weigh-in (None metrics and refusals: its person is still to be decided)."""
    return NewRow(
        reading.identity, reading.kind, reading.source, reading.device_id, reading.device_model,
        reading.device_user_id, user, assignment, reading.taken_at.timestamp(), reading.received_at.timestamp(),
        numbers_text(reading.values), numbers_text(reading.vendor_metrics),
        "" if metrics is None else metrics_text(metrics), "" if refusals is None else refusals_text(refusals),
        numbers_text(reading.raw),
    )


def stored_measurement(row: NewRow, measurement_id: int) -> Measurement:
    """What `row` became once inserted as `measurement_id`."""
    return measurement((measurement_id, row.identity, row.kind, row.source, row.device_id, row.device_model,
                        row.user, row.assignment, row.taken_at, row.received_at, row.readings, row.metrics,
                        row.refusals, row.raw))


def row_reading(row: NewRow) -> Reading:
    """The reading a row was made from (to decide again who and what)."""
    return reading((row.source, row.kind, row.device_id, row.device_model, row.taken_at, row.received_at,
                    row.device_user_id, row.readings, row.vendor_metrics, row.raw))


def reading(row: tuple) -> Reading:
    """A `READING_COLUMNS` row as the reading the device reported (to decide again who and what)."""
    return Reading(
        source=row[0], kind=row[1], device_id=row[2], device_model=row[3], taken_at=utc_from_unix(row[4]),
        received_at=utc_from_unix(row[5]), device_user_id=row[6], values=json.loads(row[7]),
        vendor_metrics=json.loads(row[8]), raw=json.loads(row[9]),
    )


def numbers_text(values: Mapping[str, float]) -> str:
    """A column of named numbers (readings, vendor values, raw), exactly as `dumps` writes it. `dumps`
    builds a new C encoder on every call, which costs more than encoding the few numbers of a
    weigh-in; the names are a small vocabulary, each encoded once. A value that is not a finite
    float, or a name that is not a string, sends the whole column to `dumps` as before."""
    parts = []
    for name, value in values.items():
        if type(value) is not float or type(name) is not str or not math.isfinite(value):
            return dumps(values)
        parts.append(f"{_name(name)}{float.__repr__(value)}")
    return f"{{{','.join(parts)}}}"


@functools.lru_cache(maxsize=1024)
def _name(name: str) -> str:
    return f"{_string(name)}:"


def metrics_text(metrics: Mapping[str, Metric]) -> str:
    """The metrics column, exactly as `dumps` writes `{name: metric.as_json()}`, without building
    those dicts: a weigh-in's twenty metrics were a fifth of importing it. A metric's name, unit,
    method and confidence come from a small vocabulary, so their encoded text is made once."""
    parts = []
    for name, metric in metrics.items():
        head, tail = _metric_frame(name, metric.unit, metric.method, metric.confidence)
        value = metric.value
        number = float.__repr__(value) if type(value) is float and math.isfinite(value) else dumps(value)
        parts.append(f"{head}{number}{tail}")
    return f"{{{','.join(parts)}}}"


@functools.lru_cache(maxsize=1024)
def _metric_frame(name: str, unit: str, method: str, confidence: str) -> tuple[str, str]:
    """A metric's text before and after its value. (Any other value than a finite float is left to
    `dumps`, which writes an int or refuses a NaN as it always did.)"""
    return (f'{_string(name)}:{{"value":',
            f',"unit":{_string(unit)},"method":{_string(method)},"confidence":{_string(confidence)}}}')


@functools.lru_cache(maxsize=256)
def _refusals_text(refusals: tuple[tuple[str, str], ...]) -> str:
    return dumps(dict(refusals))


def refusals_text(refusals: Mapping[str, str]) -> str:
    """The refusals column. A person's weigh-ins from one scale are refused the same metrics for the
    same reasons, weigh-in after weigh-in (a weight-only scale: a dozen sentences, identical each
    time), and escaping that much text costs more than all the rest of the row: each distinct set is
    encoded once (the newest `maxsize` sets are kept)."""
    return _refusals_text(tuple(refusals.items()))
