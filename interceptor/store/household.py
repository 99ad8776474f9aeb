"""Queries behind the household page: small, indexed, and streamed, so a page costs the same after a
week or a decade of weigh-ins.

Each query reads only what the page shows: a person's weight on a given day is one index probe on
(user, taken_at); a chart reads four numbers per weigh-in with `json_extract` instead of building
`Measurement`s; lists are pages after a (taken_at, id) cursor; the weigh-ins waiting for a person
have a partial index of their own (`store.database`), so hidden guests never slow them down.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from interceptor.model import Measurement
from interceptor.store import measurements as rows
from interceptor.store.journal import Reader
from interceptor.store.measurements import Filter

# What the partial index `measurements_unclaimed` covers, written exactly as its WHERE clause.
_UNCLAIMED = "user IS NULL AND assignment = 'none' AND kind = 'body'"
_WEIGHT = "json_extract(readings, '$.weight_kg')"


@dataclass(frozen=True)
class Cursor:
    """Where a page of weigh-ins ended: the next page starts strictly past it."""

    taken_at: float
    id: int

    def text(self) -> str:
        return f"{self.taken_at!r}_{self.id}"


def weight_at(reader: Reader, user: str, moment: float) -> tuple[float, float] | None:
    """(taken_at, weight) of the person's last weigh-in at or before `moment` (Unix seconds)."""
    row = reader.db.execute(
        f"SELECT taken_at, {_WEIGHT} FROM measurements WHERE user = ? AND kind = 'body' AND taken_at <= ?"
        f" AND {_WEIGHT} IS NOT NULL ORDER BY taken_at DESC LIMIT 1", (user, moment)).fetchone()
    return None if row is None else (float(row[0]), float(row[1]))


# 1970-01-01 as a proleptic Gregorian ordinal: a local day number plus this is `date.toordinal()`.
EPOCH_ORDINAL = 719163


def day_means(reader: Reader, user: str, since: float, offsets: list[tuple[float, int]], width_days: int, *,
              with_metrics: bool = False) -> list[tuple[int, float | None, float | None, float | None, float | None]]:
    """The person's weigh-ins from `since` on, averaged over buckets of `width_days` local days, oldest
    first: (last local day's ordinal, weight, body fat %, muscle kg, water %), None where nothing was
    measured. SQLite does the folding, so Python sees at most one row per bucket however long the history.

    `offsets` are the household zone's (start, UTC offset in seconds) periods over the range, oldest
    first: a weigh-in's local day is its time plus the offset in force then."""
    cases = " ".join("WHEN taken_at < ? THEN ?" for _ in offsets[1:])
    parameters: list[object] = []
    for (start, _), (_, offset) in zip(offsets[1:], offsets, strict=False):
        parameters += [start, offset]
    local = f"CASE {cases} ELSE ? END" if cases else "?"
    parameters.append(offsets[-1][1])
    metrics = (", avg(json_extract(metrics, '$.body_fat_pct.value')), avg(json_extract(metrics,"
               " '$.muscle_mass_kg.value')), avg(json_extract(metrics, '$.water_pct.value'))"
               if with_metrics else ", NULL, NULL, NULL")
    first_day = int((since + offsets[0][1]) // 86400)
    rows = reader.db.execute(
        f"SELECT max(day) + {EPOCH_ORDINAL}, avg(weight){metrics} FROM ("
        f" SELECT CAST((taken_at + {local}) / 86400 AS INTEGER) AS day, {_WEIGHT} AS weight, metrics"
        "  FROM measurements WHERE user = ? AND kind = 'body' AND taken_at >= ?)"
        " GROUP BY (day - ?) / ? ORDER BY 1",
        [*parameters, user, since, first_day, width_days])
    return rows.fetchall()


def first_weigh_in(reader: Reader, user: str) -> float | None:
    row = reader.db.execute("SELECT min(taken_at) FROM measurements WHERE user = ? AND kind = 'body'",
                            (user,)).fetchone()
    return None if row[0] is None else float(row[0])


def raw_page(reader: Reader, where: Filter, *, limit: int, after: Cursor | None = None,
             newest_first: bool = False) -> list[tuple]:
    """`page` as raw `measurements.COLUMNS` rows, for callers that read their JSON themselves (CSV, the table)."""
    return list(_page_rows(reader.db, where.where(), limit, after, newest_first))


def _page_rows(db: sqlite3.Connection, where: tuple[str, list[object]], limit: int, after: Cursor | None,
               newest_first: bool) -> Iterator[tuple]:
    clause, parameters = where
    conditions = [clause.removeprefix("WHERE ")] if clause else []
    order = "DESC" if newest_first else "ASC"
    if after is not None:
        conditions.append(f"(taken_at, id) {'<' if newest_first else '>'} (?, ?)")
        parameters = [*parameters, after.taken_at, after.id]
    text = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    yield from db.execute(
        f"SELECT {rows.COLUMNS} FROM measurements {text} ORDER BY taken_at {order}, id {order} LIMIT ?",
        [*parameters, limit])


def unclaimed(reader: Reader, *, limit: int, after: Cursor | None = None) -> list[Measurement]:
    """Weigh-ins nobody was assigned to and nobody hid, newest first."""
    condition, parameters = _UNCLAIMED, []
    if after is not None:
        condition += " AND (taken_at, id) < (?, ?)"
        parameters = [after.taken_at, after.id]
    return [rows.measurement(row) for row in reader.db.execute(
        f"SELECT {rows.COLUMNS} FROM measurements WHERE {condition} ORDER BY taken_at DESC, id DESC LIMIT ?",
        [*parameters, limit])]


def unclaimed_count(reader: Reader) -> int:
    return int(reader.db.execute(f"SELECT count(*) FROM measurements WHERE {_UNCLAIMED}").fetchone()[0])


def last_measurement_of_device(reader: Reader, device_id: str) -> Measurement | None:
    found = reader.measurements(Filter(device_id=device_id), limit=1, newest_first=True)
    return next(found, None)


def measurements_of_device(reader: Reader, device_id: str) -> int:
    """How many measurements came from one device or import source, counted on the device index alone
    (no row is read); an import source brings weigh-ins only, so for it this is its weigh-ins."""
    return int(reader.db.execute("SELECT count(*) FROM measurements WHERE device_id = ?",
                                 (device_id,)).fetchone()[0])
