"""Starting the household page next to the emulated cloud: its own runner and listener, the same
journal and pipeline (so a claim on the page and a weigh-in from a scale meet in one writer)."""

from __future__ import annotations

import logging

from aiohttp import web

from interceptor.config import Config
from interceptor.pipeline import Pipeline
from interceptor.store.journal import Journal
from interceptor.web.app import Clock, Health, create_web_app
from interceptor.web.listener import GuardedSite, Limits

log = logging.getLogger(__name__)


async def start_web(config: Config, journal: Journal, pipeline: Pipeline, health: Health,
                    clock: Clock) -> web.AppRunner:
    """Listening on return; raises OSError when the address cannot be bound (the caller says why)."""
    settings = config.web
    limits = Limits(max_connections=settings.max_connections, per_client=settings.max_connections_per_client,
                    request_timeout_s=settings.request_timeout_s)
    app = create_web_app(config, journal, pipeline, health, limits, clock)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=settings.keepalive_timeout_s,
                           max_line_size=8190, max_field_size=8190, handle_signals=False)
    await runner.setup()
    host, port = settings.host_port
    try:
        await GuardedSite(runner, host, port, limits).start()
    except BaseException:
        await runner.cleanup()
        raise
    for address in runner.addresses:
        shown = "127.0.0.1" if address[0] in ("0.0.0.0", "::") else address[0]
        log.info("household page on http://%s:%s/%s", shown, address[1],
                 " (password required)" if settings.password else "")
    return runner
