"""Drains a sink's outbox in journal order, in batches, with retry and backoff.

A sink that is down only delays delivery: items stay in the journal's outbox (they survive restarts)
until the sink accepted them. Delivery is idempotent, because a point's identity in InfluxDB is its
tags and timestamp; re-sending after a crash between "written" and "marked delivered" overwrites the
same point. A batch InfluxDB refuses to parse is dropped with an error in the log, since no retry can
change it; everything else is retried, forever, with exponential backoff capped at `max_backoff`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from interceptor.store.influx import InfluxWriter, SinkError
from interceptor.store.journal import Journal, OutboxItem
from interceptor.store.lineprotocol import device_line, measurement_line

log = logging.getLogger(__name__)

INFLUX = "influx"


class Delivery:
    def __init__(
        self,
        journal: Journal,
        writer: InfluxWriter,
        *,
        sink: str = INFLUX,
        batch_size: int = 500,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.writer = writer
        self.sink = sink
        self.batch_size = batch_size
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self.clock = clock
        self.last_error: str | None = None
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Called after the journal queued something: deliver now rather than at the next poll."""
        self._wake.set()

    def render(self, items: list[OutboxItem]) -> list[str]:
        measurements = self.journal.measurements_by_id([i.item_id for i in items if i.item == "measurement"])
        reports = self.journal.device_reports([i.item_id for i in items if i.item == "device"])
        lines = []
        for item in items:
            if item.item == "measurement" and item.item_id in measurements:
                text = measurement_line(measurements[item.item_id])
            elif item.item == "device" and item.item_id in reports:
                text = device_line(reports[item.item_id])
            else:
                text = None
            if text is not None:
                lines.append(text)
        return lines

    async def deliver_once(self) -> int | None:
        """Send one due batch; returns how many items it settled, or None when nothing was due."""
        items = self.journal.outbox_due(self.sink, self.batch_size, self.clock())
        if not items:
            return None
        ids = [item.id for item in items]
        try:
            for item in items:
                if item.retract is not None:
                    measurement = item.retract.pop("_measurement", "body")
                    timestamp = int(item.retract.pop("_time"))
                    await self.writer.retract(measurement, item.retract, timestamp)
            lines = self.render(items)
            if lines:
                await self.writer.write(lines)
        except SinkError as error:
            if error.retry:
                attempts = items[0].attempts
                delay = min(self.max_backoff, self.first_backoff * 2**attempts)
                self.journal.outbox_failed(ids, str(error), self.clock() + delay)
                self._report(f"{error}; {self.journal.outbox_size(self.sink)} item(s) kept in the outbox,"
                             f" retrying in {delay:g} s")
                return 0
            log.error("%s: dropped a batch of %d item(s) InfluxDB cannot accept (they stay in the journal)",
                      error, len(ids))
        self.journal.outbox_delivered(ids)
        if self.last_error is not None:
            log.info("InfluxDB delivery works again (%s)", self.writer.__class__.__name__)
            self.last_error = None
        return len(ids)

    def _report(self, message: str) -> None:
        """One log line per distinct failure, not one per retry."""
        first = message.split(";")[0]
        if self.last_error != first:
            log.error("%s", message)
            self.last_error = first

    async def drain(self) -> int:
        """Deliver until the outbox is empty or the sink fails; returns how many items were settled."""
        settled = 0
        while (count := await self.deliver_once()) is not None:
            if count == 0:
                break
            settled += count
        return settled

    async def run(self) -> None:
        """Forever: deliver what is due, then sleep until woken or until the next retry is due."""
        while True:
            self._wake.clear()
            try:
                settled = await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop delivery for good
                log.exception("InfluxDB delivery failed unexpectedly; retrying")
                settled = 0
            if settled:
                continue
            next_attempt = self.journal.outbox_next_attempt(self.sink)
            timeout = 5.0 if next_attempt is None else max(0.05, min(5.0, next_attempt - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
