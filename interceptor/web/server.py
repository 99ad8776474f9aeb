"""Starting the household page next to the emulated cloud: its own listener, guarded like every HTTP
listener (`interceptor.listeners`) under the `[web]` limits, and the same journal and pipeline (so a
claim on the page and a weigh-in from a scale meet in one writer)."""

from __future__ import annotations

from aiohttp import web

from interceptor.config import Config
from interceptor.listeners import start_listener
from interceptor.pipeline import Pipeline
from interceptor.store.journal import Journal
from interceptor.web.app import Clock, Health, create_web_app
from interceptor.web.settings import LISTENER_KEYS

# A page has `[web] request_timeout_s` to be made, then the page's own 503 goes out; the listener
# closes the connection only if that reply has not started this much later.
REPLY_GRACE_S = 1.0


async def start_web(config: Config, journal: Journal, pipeline: Pipeline, health: Health,
                    clock: Clock) -> web.AppRunner:
    """Listening on return; raises OSError when the address cannot be bound (the caller says why, and
    where it listens once every listener of `serve` is up)."""
    settings = config.web
    app = create_web_app(config, journal, pipeline, health, clock)
    host, port = settings.host_port
    # The listener's request_timeout runs from a request's first byte until the page starts making it
    # (`listeners.handling_began`, called by the access middleware), not until the reply: making a page
    # from years of weigh-ins has a deadline of its own.
    return await start_listener(app, host, port, settings.listener_limits, keys=LISTENER_KEYS,
                                handling_timeout=settings.request_timeout_s + REPLY_GRACE_S, access_log=None,
                                max_line_size=8190, max_field_size=8190, handle_signals=False)
