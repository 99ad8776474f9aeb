"""What went to a person's Garmin Connect account: one row per weigh-in, with a digest of what was sent.

Garmin keeps every weight file it is sent, so a weigh-in sent twice shows twice: before an upload the
uploader asks which weigh-ins are already there (`sent`), and records an upload as soon as Garmin
accepted it (`record`). The digest tells a weigh-in changed since (recomputed, recalibrated) from one
that did not.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

IDS_PER_QUERY = 500  # SQLite caps the variables of one statement


def sent(db: sqlite3.Connection, person: str, ids: Iterable[int]) -> dict[int, str]:
    """Of `ids`, those already uploaded to `person`'s account, with the digest of what was sent."""
    found: dict[int, str] = {}
    wanted = list(ids)
    for start in range(0, len(wanted), IDS_PER_QUERY):
        chunk = wanted[start:start + IDS_PER_QUERY]
        found.update(db.execute(
            f"SELECT measurement_id, digest FROM garmin_uploads WHERE person = ?"
            f" AND measurement_id IN ({','.join('?' * len(chunk))})", [person, *chunk]).fetchall())
    return found


def record(db: sqlite3.Connection, person: str, digests: dict[int, str], at: float) -> None:
    db.executemany(
        "INSERT INTO garmin_uploads (person, measurement_id, digest, uploaded_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (person, measurement_id) DO UPDATE SET digest = excluded.digest,"
        " uploaded_at = excluded.uploaded_at",
        [(person, measurement_id, digest, at) for measurement_id, digest in digests.items()])


def count(db: sqlite3.Connection, person: str) -> int:
    return int(db.execute("SELECT count(*) FROM garmin_uploads WHERE person = ?", (person,)).fetchone()[0])
