"""Drains a sink's outbox in journal order, in batches, with retry and backoff.

A sink that is down only delays delivery: items stay in the journal's outbox (they survive restarts)
until the sink accepted them. Re-sending after a crash between "sent" and "marked delivered" must be
harmless, and each sink makes it so: a point's identity in InfluxDB is its tags and timestamp (the
same point is overwritten); the MQTT sink reads its own retained states back and skips what the
broker already has. A batch the sink refuses to parse is dropped with an error in the log, since no
retry can change it; everything else is retried, forever, with exponential backoff capped at
`max_backoff`. The `Sender` (`store.sink`) is the only sink-specific part.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from interceptor.store.journal import Journal, OutboxBatch
from interceptor.store.sink import Sender, SinkError

log = logging.getLogger(__name__)

INFLUX = "influx"


class Delivery:
    def __init__(
        self,
        journal: Journal,
        sender: Sender,
        *,
        sink: str = INFLUX,
        batch_size: int = 500,
        first_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.journal = journal
        self.sender = sender
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

    async def _send(self, batch: OutboxBatch) -> SinkError | None:
        try:
            await self.sender.send(batch)
        except SinkError as error:
            return error
        return None

    async def _settle(self, batch: OutboxBatch, error: SinkError | None) -> int:
        """Book the outcome of a send; returns the items settled (0 when they wait for a retry)."""
        if error is not None and error.retry:
            delay = min(self.max_backoff, self.first_backoff * 2**batch.attempts)
            await self.journal.write(lambda tx: tx.outbox_failed(batch, str(error), self.clock() + delay),
                                     durable=False)
            kept = await self.journal.read(lambda reader: reader.outbox_size(self.sink))
            self._report(f"{error}; {kept} item(s) kept in the outbox,"
                         f" retrying in {delay:g} s")
            return 0
        if error is not None:
            log.error("%s: dropped a batch of %d item(s) %s cannot accept (they stay in the journal)",
                      error, batch.size, self.sender.label)
        # Without fsync: losing this mark in a power cut only means sending the same points again,
        # which overwrites them.
        await self.journal.write(lambda tx: tx.outbox_delivered(self.sink, batch.last_id), durable=False)
        if self.last_error is not None:
            log.info("%s delivery works again", self.sender.label)
            self.last_error = None
        return batch.size

    def _report(self, message: str) -> None:
        """One log line per distinct failure, not one per retry."""
        first = message.split(";")[0]
        if self.last_error != first:
            log.error("%s", message)
            self.last_error = first

    async def _batch(self, after: int) -> OutboxBatch | None:
        return await self.journal.read(
            lambda reader: reader.outbox_batch(self.sink, self.batch_size, self.clock(), after=after))

    def _start(self, batch: OutboxBatch) -> asyncio.Task[SinkError | None]:
        return asyncio.create_task(self._send(batch))

    async def drain(self, on_settled: Callable[[int], None] | None = None) -> int:
        """Deliver until the outbox is empty or the sink fails (then `last_error` says why); returns
        how many items were settled, each batch also reported to `on_settled` (a progress bar).

        Pipelined: while batch k is on its way to the sink (another process), batch k+1 is read from
        the journal, and batch k is marked delivered while k+1 is on its way. Marking k after k+1 was
        sent is safe: a crash in between re-sends k, which the sink takes harmlessly (see above)."""
        settled = 0
        batch = await self._batch(0)
        if batch is None:
            return 0
        sending = self._start(batch)
        while True:
            following = await self._batch(batch.last_id)
            error = await sending
            if error is not None and error.retry:
                await self._settle(batch, error)
                return settled
            following_sending = self._start(following) if following is not None else None
            count = await self._settle(batch, error)
            settled += count
            if on_settled is not None:
                on_settled(count)
            if following is None or following_sending is None:
                return settled
            batch, sending = following, following_sending

    async def run(self) -> None:
        """Forever: deliver what is due, then sleep until woken or until the next retry is due."""
        while True:
            self._wake.clear()
            try:
                settled = await self.drain()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bug must not stop delivery for good
                log.exception("%s delivery failed unexpectedly; retrying", self.sender.label)
                settled = 0
            if settled:
                continue
            next_attempt = await self.journal.read(lambda reader: reader.outbox_next_attempt(self.sink))
            timeout = 5.0 if next_attempt is None else max(0.05, min(5.0, next_attempt - self.clock()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
