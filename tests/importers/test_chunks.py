"""`import_all` reads the next chunk while the writer stores one: what it sends, when, and what is
counted when a chunk or the reading fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime

import pytest

from interceptor.importers.summary import CHUNK, Summary, chunks, import_all
from interceptor.model import Reading
from interceptor.pipeline import Imported, ImportResult
from interceptor.store.imports import MergeRule

RULE = MergeRule("person", 120, 0.1)
T0 = datetime(2024, 5, 1, 7, 30, tzinfo=UTC)


def records(count: int, events: list[str], fail_after: int | None = None) -> Iterator[Imported]:
    reading = Reading(source="import", device_id="zepp:fed", taken_at=T0, received_at=T0, values={"weight_kg": 70.0})
    for index in range(count):
        if index == fail_after:
            raise OSError("the file went away")
        events.append(f"read {index}")
        yield Imported(reading, "fed", f"row {index}")


class Writer:
    """Stands in for the pipeline: each chunk takes a moment on the writer, one at a time."""

    def __init__(self, events: list[str], fail_chunk: int | None = None) -> None:
        self.events = events
        self.fail_chunk = fail_chunk
        self.chunks = 0
        self.in_flight = 0

    async def import_prepared(self, items: Sequence[Imported], rule: MergeRule) -> list[ImportResult]:
        number = self.chunks
        self.chunks += 1
        self.in_flight += 1
        assert self.in_flight == 1, "a chunk was sent before the previous one was stored"
        self.events.append(f"store {number}")
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        if number == self.fail_chunk:
            raise OSError("disk full")
        self.events.append(f"stored {number}")
        return [ImportResult(item.origin, "new", 1) for item in items]


async def test_the_next_chunk_is_read_while_one_is_stored_and_never_more() -> None:
    events: list[str] = []
    summary = Summary("file", "Zepp Life")
    progress: list[int] = []
    await import_all(Writer(events), chunks(records(2 * CHUNK + 3, events)), RULE, summary,  # type: ignore[arg-type]
                     progress.append)
    assert summary.new == 2 * CHUNK + 3 and progress == [CHUNK, CHUNK, 3]
    # The second chunk is read while the first is stored, and sent once the first is stored.
    assert events.index("store 0") < events.index(f"read {CHUNK}") < events.index(f"read {2 * CHUNK - 1}")
    assert events.index(f"read {2 * CHUNK - 1}") < events.index("stored 0") < events.index("store 1")
    # Never more than one chunk read ahead of the one being stored.
    assert events.index("stored 0") < events.index(f"read {2 * CHUNK}")


async def test_a_failed_chunk_stops_the_import_before_the_next_is_sent() -> None:
    events: list[str] = []
    summary = Summary("file", "Zepp Life")
    writer = Writer(events, fail_chunk=1)
    with pytest.raises(OSError, match="disk full"):
        await import_all(writer, chunks(records(4 * CHUNK, events)), RULE, summary)  # type: ignore[arg-type]
    assert writer.chunks == 2 and summary.new == CHUNK


async def test_the_chunk_in_flight_is_stored_and_counted_when_reading_fails() -> None:
    events: list[str] = []
    summary = Summary("file", "Zepp Life")
    with pytest.raises(OSError, match="the file went away"):
        await import_all(Writer(events), chunks(records(4 * CHUNK, events, fail_after=CHUNK + 7)), RULE,  # type: ignore[arg-type]
                         summary)
    assert summary.new == CHUNK and events[-1] == "stored 0"
