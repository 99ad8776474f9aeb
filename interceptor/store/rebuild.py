"""`interceptor sync influx`: rebuild InfluxDB from the journal, streaming.

The journal is read in time order and sent in batches straight to InfluxDB, without going through
the outbox: a rebuild of a million weigh-ins costs the memory of two batches, and running it twice
only overwrites the same points (a point's identity is its tags and time). While batch k is on its
way, batch k+1 is rendered on a thread, so InfluxDB and the journal work at the same time. The
outbox of the running server is left alone: what it still owes it sends itself.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from interceptor.store.influx import InfluxWriter, SinkError
from interceptor.store.journal import Filter, Reader
from interceptor.store.lineprotocol import device_line, measurement_line
from interceptor.store.measurements import measurement


@dataclass
class Rebuilt:
    sent: int  # points InfluxDB accepted
    total: int  # points the journal holds for the range
    error: SinkError | None = None
    resume_from: datetime | None = None  # the time of the first point not sent, when `error` stopped it


def count_points(reader: Reader, since: datetime | None) -> int:
    devices = reader.db.execute("SELECT count(*) FROM device_history WHERE seen_at >= ?",
                                (since.timestamp() if since else 0.0,)).fetchone()[0]
    return reader.count(Filter(since=since)) + int(devices)


def _points(reader: Reader, since: datetime | None) -> Iterator[tuple[datetime, str | None]]:
    for row in reader.measurement_rows(Filter(since=since)):
        item = measurement(row)
        yield item.taken_at, measurement_line(item)
    for report in reader.device_reports(since):
        yield report.seen_at, device_line(report)


async def rebuild(
    reader: Reader, writer: InfluxWriter, *, since: datetime | None, batch_size: int,
    on_sent: Callable[[int], None] | None = None,
) -> Rebuilt:
    result = Rebuilt(0, count_points(reader, since))
    try:
        await writer.probe()  # reachable, credentials right, database created when allowed
    except SinkError as error:
        result.error = error
        return result
    points = _points(reader, since)

    def next_batch() -> list[tuple[datetime, str | None]]:
        return list(itertools.islice(points, batch_size))

    batch = await asyncio.to_thread(next_batch)
    while batch:
        lines = [text for _, text in batch if text is not None]
        sent, following = await asyncio.gather(writer.write(lines), asyncio.to_thread(next_batch),
                                               return_exceptions=True)
        if isinstance(sent, SinkError):
            result.error, result.resume_from = sent, batch[0][0]
            return result
        for outcome in (sent, following):
            if isinstance(outcome, BaseException):
                raise outcome
        assert isinstance(following, list)
        result.sent += len(batch)
        if on_sent is not None:
            on_sent(len(batch))
        batch = following
    return result
