"""Weigh-ins brought in from elsewhere (export files, vendor clouds), as the journal keeps them.

An imported record is remembered by its identity, with the measurement it became or was merged
into, so importing the same file twice changes nothing. A record that describes a weigh-in the
journal already has (the same person or scale, moments apart) is attached to it: the values it adds
(a vendor's body fat, an impedance) join the stored weigh-in instead of making a second one.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from interceptor.store.measurements import dumps


@dataclass(frozen=True)
class MergeRule:
    """When an imported record is the same weigh-in as a stored one.

    `same`: the person (export files name a person) or the device (a vendor cloud names the scale);
    `window_s`: how far apart the two moments may be; `weight_kg`: how far apart the weights may be
    (None: any weight, when the device alone is trusted)."""

    same: Literal["person", "device"]
    window_s: float
    weight_kg: float | None

    def key(self, user: str | None, device_id: str) -> str | None:
        """Whose weigh-ins a record may merge into: its person's (None: nobody's) or its device's."""
        return user if self.same == "person" else device_id

    def weights_agree(self, weight_kg: float | None, other_kg: float | None) -> bool:
        """A rule with a weight tolerance never matches a weigh-in without a weight."""
        return self.weight_kg is None or (weight_kg is not None and other_kg is not None
                                          and abs(weight_kg - other_kg) <= self.weight_kg)


class Preview:
    """The records a dry run has seen, so that one describing a weigh-in an earlier record of the same
    run would have made is counted as merged, and a repeated one as unchanged, as a real run would."""

    def __init__(self) -> None:
        self._identities: set[str] = set()
        self._moments: dict[tuple[str, int], list[tuple[float, float | None]]] = {}

    def outcome(self, rule: MergeRule, identity: str, user: str | None, device_id: str, taken_at: datetime,
                weight_kg: float | None) -> Literal["merged", "unchanged"] | None:
        if identity in self._identities:
            return "unchanged"
        self._identities.add(identity)
        key = rule.key(user, device_id)
        if key is None:
            return None
        moment = taken_at.timestamp()
        bucket = int(moment // rule.window_s)
        for near in (bucket - 1, bucket, bucket + 1):
            for stored_at, weight in self._moments.get((key, near), ()):
                if abs(stored_at - moment) <= rule.window_s and rule.weights_agree(weight, weight_kg):
                    return "merged"
        self._moments.setdefault((key, bucket), []).append((moment, weight_kg))
        return None


# Identities per query (SQLite caps the variables of a statement).
IDENTITIES_PER_QUERY = 500


def imported(db: sqlite3.Connection, identities: Sequence[str]) -> dict[str, int]:
    """The measurement each of `identities` imported before became or was merged into (those never
    imported are absent), looked up together."""
    found: dict[str, int] = {}
    for start in range(0, len(identities), IDENTITIES_PER_QUERY):
        chunk = identities[start:start + IDENTITIES_PER_QUERY]
        found.update(db.execute(f"SELECT identity, measurement_id FROM imports WHERE identity IN"
                                f" ({','.join('?' * len(chunk))})", chunk))
    return found


def remember(db: sqlite3.Connection, imported: Iterable[tuple[str, int]]) -> None:
    """Note (identity, measurement id) pairs as imported."""
    db.executemany("INSERT OR IGNORE INTO imports (identity, measurement_id) VALUES (?, ?)", imported)


# Records per query when looking up a chunk's stored neighbours (two variables each; old SQLite builds
# cap a statement at 999).
MOMENTS_PER_QUERY = 400


class Nearby:
    """The stored weigh-ins a chunk of records may merge into, found in one query for the chunk
    instead of one per record, then kept current by the chunk's own inserts (the job is alone on the
    writer, so nothing else changes them meanwhile); a dry run uses it the same way, without the
    inserts. An attachment may give a weightless weigh-in a weight, which is not followed: a rule
    with a weight tolerance never matches a weightless one, so never attaches to it, and a rule
    without one never looks at weights."""

    def __init__(self, db: sqlite3.Connection, rule: MergeRule, moments: Sequence[float]) -> None:
        self.rule = rule
        # (person or device, time bucket) -> (id, taken_at, weight) of each weigh-in there.
        self._near: dict[tuple[str, int], list[tuple[int, float, float | None]]] = {}
        self._ids: set[int] = set()
        for start in range(0, len(moments), MOMENTS_PER_QUERY):
            chunk = moments[start:start + MOMENTS_PER_QUERY]
            probes = ",".join("(?, ?)" for _ in chunk)
            bounds = [bound for moment in chunk for bound in (moment - rule.window_s, moment + rule.window_s)]
            # Each probe a range of the time index: CROSS JOIN keeps the probes outside, and `+kind`
            # keeps the planner from indexing the kind instead (which scans the whole table per probe).
            for identifier, user, device_id, stored_at, weight in db.execute(
                    f"WITH probe(low, high) AS (VALUES {probes}) SELECT DISTINCT m.id, m.user, m.device_id,"
                    f" m.taken_at, json_extract(m.readings, '$.weight_kg') FROM probe CROSS JOIN measurements m"
                    f" ON +m.kind = 'body' AND m.taken_at BETWEEN probe.low AND probe.high", bounds):
                if identifier not in self._ids:
                    self.stored(identifier, user, device_id, stored_at, weight)

    def _bucket(self, moment: float) -> int:
        return int(moment // self.rule.window_s)

    def stored(self, measurement_id: int, user: str | None, device_id: str, taken_at: float,
               weight_kg: float | None) -> None:
        """A weigh-in is in the journal (the chunk inserted it, or it was there)."""
        key = self.rule.key(user, device_id)
        if key is None:
            return
        self._ids.add(measurement_id)
        self._near.setdefault((key, self._bucket(taken_at)), []).append((measurement_id, taken_at, weight_kg))

    def same_weigh_in(self, *, user: str | None, device_id: str, moment: float,
                      weight_kg: float | None) -> int | None:
        """The stored weigh-in this record describes: the nearest in time that fits the rule, the
        lower id on a tie; None when there is none (`moment`: the record's Unix time). Buckets two
        either side are searched: one would do but for rounding."""
        rule = self.rule
        key = self.rule.key(user, device_id)
        if key is None:
            return None
        low, high = moment - rule.window_s, moment + rule.window_s
        bucket = self._bucket(moment)
        fitting = [
            (abs(stored_at - moment), identifier)
            for near in range(bucket - 2, bucket + 3)
            for identifier, stored_at, weight in self._near.get((key, near), ())
            if low <= stored_at <= high and rule.weights_agree(weight, weight_kg)
        ]
        return min(fitting)[1] if fitting else None


# A vendor value this close to the metric the journal already shows for the weigh-in adds nothing:
# it is that metric, written out and read back (an exported openScale CSV, re-imported).
SAME_VALUE_TOLERANCE = 0.01


def additions(db: sqlite3.Connection, measurement_id: int, values: dict[str, float],
              vendor_metrics: dict[str, float]) -> tuple[dict[str, float], dict[str, float]]:
    """The readings and vendor values a record adds to a stored weigh-in: those it lacks (what the
    device sent live wins), less vendor values equal to a metric it already shows."""
    readings_text, vendor_text, metrics_text = db.execute(
        "SELECT readings, vendor_metrics, metrics FROM measurements WHERE id = ?", (measurement_id,)).fetchone()
    readings, vendor, shown = json.loads(readings_text), json.loads(vendor_text), json.loads(metrics_text)
    added_readings = {name: value for name, value in values.items() if name not in readings}
    added_vendor = {
        name: value for name, value in vendor_metrics.items()
        if name not in vendor and not (name in shown and abs(shown[name]["value"] - value) <= SAME_VALUE_TOLERANCE)
    }
    return added_readings, added_vendor


def attach(db: sqlite3.Connection, measurement_id: int, values: dict[str, float],
           vendor_metrics: dict[str, float]) -> bool:
    """Add what the record adds to the stored weigh-in (`additions`); True if anything was new."""
    added_readings, added_vendor = additions(db, measurement_id, values, vendor_metrics)
    if not added_readings and not added_vendor:
        return False
    readings_text, vendor_text = db.execute(
        "SELECT readings, vendor_metrics FROM measurements WHERE id = ?", (measurement_id,)).fetchone()
    db.execute("UPDATE measurements SET readings = ?, vendor_metrics = ? WHERE id = ?",
               (dumps({**json.loads(readings_text), **added_readings}),
                dumps({**json.loads(vendor_text), **added_vendor}), measurement_id))
    return True
