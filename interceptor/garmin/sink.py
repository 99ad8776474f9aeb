"""`serve` pushes each new weigh-in of a person in `[garmin] users` to their Garmin Connect account.

Each such person is a sink of their own, `garmin:<person>`, with its own outbox queue: one person's
expired sign-in holds back only their own weigh-ins. An item is the id of a weigh-in from a scale
speaking now (`model.LIVE_SOURCES`: history from export files and vendor clouds is for `interceptor
export garmin`), queued when it is stored as theirs or later claimed for them. At send time the
uploader skips what Garmin already has (`uploader`): a crash between the upload and the outbox's
"delivered" mark sends nothing twice, and neither does a restart. A recomputed weigh-in that was
already sent is not queued again (Garmin would keep both).

Failures are the `Delivery`'s: retried with backoff (up to an hour: a rate-limited or refusing
Garmin is not asked every minute), one log line per distinct failure, and the reason noted on the
outbox for the household page's health view and `doctor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from interceptor.config import Config
from interceptor.exporters.fit import MAX_PER_FILE
from interceptor.garmin.library import GarminError
from interceptor.garmin.tokens import TokenStore
from interceptor.garmin.uploader import Uploader
from interceptor.model import LIVE_SOURCES, Measurement
from interceptor.store import uploads
from interceptor.store.delivery import Delivery
from interceptor.store.journal import DeviceReport, Journal, OutboxBatch, Tx
from interceptor.store.sink import SinkError

log = logging.getLogger(__name__)

PREFIX = "garmin:"
FIRST_BACKOFF_S = 5.0
MAX_BACKOFF_S = 3600.0


def sink_name(person: str) -> str:
    return f"{PREFIX}{person}"


def _pushed(measurement: Measurement, person: str) -> bool:
    return (measurement.kind == "body" and measurement.user == person and measurement.source in LIVE_SOURCES
            and "weight_kg" in measurement.readings)


class GarminRenderer:
    """`store.outbox.Renderer` for one person's Garmin sink: an item is `{"measurement_id": N}`."""

    def __init__(self, person: str) -> None:
        self.person = person

    def measurement(self, measurement: Measurement, tx: Tx) -> str | None:
        return json.dumps({"measurement_id": measurement.id}) if _pushed(measurement, self.person) else None

    def revision(self, old: Measurement, new: Measurement, tx: Tx) -> str | None:
        """A weigh-in claimed for the person is new to Garmin; one already sent is not sent again."""
        if not _pushed(new, self.person) or uploads.sent(tx.db, self.person, [new.id]):
            return None
        return self.measurement(new, tx)

    def device(self, report: DeviceReport, tx: Tx) -> str | None:
        return None

    def retraction(self, old: Measurement, new: Measurement) -> dict[str, str] | None:
        return None  # nothing is taken back from Garmin Connect


class GarminSender:
    """`store.sink.Sender`: one FIT file per batch of the person's weigh-ins still theirs."""

    def __init__(self, journal: Journal, uploader: Uploader) -> None:
        self.journal = journal
        self.uploader = uploader
        self.label = f"Garmin Connect ({uploader.person})"

    async def send(self, batch: OutboxBatch) -> None:
        ids = [json.loads(payload)["measurement_id"] for payload in batch.payloads]
        if not ids:
            return
        found = await self.journal.read(lambda reader: reader.measurements_by_id(ids))
        person = self.uploader.person
        theirs = [found[i] for i in ids if i in found and _pushed(found[i], person)]  # not moved away since
        try:
            outcome = await self.uploader.send(theirs)
        except GarminError as error:
            raise SinkError(f"Garmin Connect for {person}: {error}", retry=error.retry) from None
        if outcome.sent:
            log.info("sent %d weigh-in(s) of %s to Garmin Connect", outcome.sent, person)
        if outcome.changed:
            log.info("%d weigh-in(s) of %s changed after they were sent to Garmin Connect; not sent again (Garmin "
                     "would keep both)", len(outcome.changed), person)


def garmin_context(config: Config, journal: Journal) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs one outbox per person in `[garmin] users` for as long as the application runs."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        tasks = []
        for person in config.garmin.users:
            uploader = Uploader(journal, TokenStore(config.data_dir, person), config.garmin.domain)
            delivery = Delivery(journal, GarminSender(journal, uploader), sink=sink_name(person),
                                batch_size=MAX_PER_FILE, first_backoff=FIRST_BACKOFF_S, max_backoff=MAX_BACKOFF_S)
            journal.on_queued(delivery.wake)
            tasks.append(asyncio.create_task(delivery.run(), name=f"garmin-delivery-{person}"))
        if tasks:
            log.info("new weigh-ins of %s go to Garmin Connect", ", ".join(config.garmin.users))
        yield
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return context
