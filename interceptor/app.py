"""Assembles the HTTP application: journal, request log, pipeline and the emulated Withings cloud.

Kept apart from `serve` so tests and `replay` can run the very same application in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from interceptor.ble.routes import ble_context, ble_mqtt_context, ble_routes
from interceptor.config import Config
from interceptor.listeners import NOTICES, http_notices
from interceptor.pipeline import Clock, Pipeline, utc_now
from interceptor.sinks import configured_sinks
from interceptor.store.delivery import Delivery
from interceptor.store.influx import InfluxSender, SinkError, make_writer
from interceptor.store.journal import Journal
from interceptor.store.requestlog import RequestLog
from interceptor.withings.protocol import MAX_BODY_BYTES
from interceptor.withings.routes import WithingsCloud

log = logging.getLogger(__name__)

JOURNAL = web.AppKey("journal", Journal)
PIPELINE = web.AppKey("pipeline", Pipeline)

# The real server's header (reference §1.2); scale firmware has only ever seen this one.
SERVER_HEADER = "Apache"


async def _like_the_real_server(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """HTTP/1.0 clients get a Content-Length reply and a closed connection: an embedded client that
    sent `Connection: keep-alive` would otherwise wait for a body end that never comes."""
    response.headers["Server"] = SERVER_HEADER
    if request.version < (1, 1):
        response.force_close()


def create_app(config: Config, *, clock: Clock = utc_now) -> web.Application:
    journal = Journal(config.data_dir / "journal.sqlite", sinks=configured_sinks(config))
    settings = config.requestlog
    request_log = RequestLog(config.data_dir / "requests.sqlite", max_rows=settings.max_rows,
                             max_bytes=settings.max_bytes, max_body_bytes=settings.max_body_bytes)
    pipeline = Pipeline(journal, config, clock)
    notices = http_notices()
    cloud = WithingsCloud(config, pipeline, request_log, notices, clock)
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[JOURNAL] = journal
    app[PIPELINE] = pipeline
    app[NOTICES] = notices
    app.add_routes(cloud.routes())
    app.add_routes(ble_routes(config, pipeline, notices))
    app.cleanup_ctx.append(ble_context(config, pipeline))
    app.cleanup_ctx.append(ble_mqtt_context(config, pipeline))
    app.on_response_prepare.append(_like_the_real_server)

    async def load_state(_: web.Application) -> None:
        await pipeline.load()
        await cloud.start()

    app.on_startup.append(load_state)

    async def close_stores(_: web.Application) -> None:
        journal.flush_later()
        await asyncio.to_thread(journal.close)  # commits what is queued: not on the event loop
        await asyncio.to_thread(request_log.close)

    app.on_cleanup.append(close_stores)
    if config.influx.enabled:
        app.cleanup_ctx.append(_influx_delivery(config, journal))
    if config.mqtt.enabled:
        from interceptor.homeassistant.link import homeassistant_context

        app.cleanup_ctx.append(homeassistant_context(config, pipeline))
    if config.garmin.users:
        from interceptor.garmin.sink import garmin_context

        app.cleanup_ctx.append(garmin_context(config, journal))
    return app


def _influx_delivery(config: Config, journal: Journal) -> Callable[[web.Application], AsyncIterator[None]]:
    """Runs the InfluxDB outbox for as long as the application runs; says once, clearly, if InfluxDB
    cannot be used, and keeps every weigh-in in the outbox until it can."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        writer = make_writer(config.influx)
        delivery = Delivery(journal, InfluxSender(writer), batch_size=config.influx.batch_size)
        journal.on_queued(delivery.wake)

        async def probe_then_run() -> None:
            try:
                await writer.probe()
                log.info("InfluxDB at %s is ready (%s dialect)", config.influx.shown_url, config.influx.dialect)
            except SinkError as error:
                log.error("%s (weigh-ins are kept and sent once it works)", error)
            await delivery.run()

        task = asyncio.create_task(probe_then_run(), name="influx-delivery")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await writer.close()

    return context
