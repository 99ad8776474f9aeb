"""`POST /api/v1/ble/frames` for the gateway, and the tasks the BLE service runs inside `serve`.

Wiring (interceptor/app.py):

    app.add_routes(ble_routes(config, pipeline, notices))
    app.cleanup_ctx.append(ble_context(config, pipeline))
    app.cleanup_ctx.append(ble_mqtt_context(config, pipeline))

All three share one `BleService` per pipeline, so the endpoint, the MQTT subscriber and the flush
task feed the same aggregator.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import time
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from aiohttp import web

from interceptor.ble.framelog import FrameLog
from interceptor.ble.frames import Frame, FrameError, frame_from_json
from interceptor.ble.gateways import GatewayId, gateway_from_json
from interceptor.ble.service import BleService
from interceptor.config import Config, find_config_path
from interceptor.nesting import TooDeep, loads_json
from interceptor.notices import Notices, Quoted
from interceptor.pipeline import Pipeline
from interceptor.store.database import JournalError

log = logging.getLogger(__name__)

FRAMES_PATH = "/api/v1/ble/frames"
MAX_FRAMES_PER_BATCH = 2000
TICK_S = 1.0

_services: weakref.WeakKeyDictionary[Pipeline, BleService] = weakref.WeakKeyDictionary()

CleanupContext = Callable[[web.Application], AsyncIterator[None]]


def running_config_path() -> Path | None:
    """The file `serve` was started with (`--config`, else the usual search), to watch for changes."""
    context = click.get_current_context(silent=True)
    explicit = context.meta.get("interceptor.config_path") if context is not None else None
    return find_config_path(explicit, os.environ)


def service_for(config: Config, pipeline: Pipeline, config_path: Path | None = None) -> BleService:
    service = _services.get(pipeline)
    if service is None:
        service = BleService(config, pipeline, config_path=config_path or running_config_path(),
                             frame_log=FrameLog(config.data_dir / "ble-frames.sqlite"))
        _services[pipeline] = service
    return service


@dataclass(frozen=True)
class Batch:
    frames: list[Frame]
    gateway: GatewayId | None  # None: a gateway that does not name itself (older ones, curl)


def parse_batch(body: bytes) -> Batch:
    """`{"frames": [...], "gateway": {...}}` → a batch; FrameError names the first bad frame and
    field, the bad gateway field, or the nesting limit."""
    try:
        document: Any = loads_json(body, "body")
    except TooDeep as error:
        raise FrameError(f"{error}; a batch of frames needs 4") from None
    except ValueError as error:
        raise FrameError(f"body is not JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("frames"), list):
        raise FrameError('body must be a JSON object {"frames": [...]}')
    unknown = set(document) - {"frames", "gateway"}
    if unknown:
        raise FrameError(f"unknown batch fields {sorted(unknown)}; send frames and, optionally, gateway")
    gateway = None if document.get("gateway") is None else gateway_from_json(document["gateway"])
    items = document["frames"]
    if len(items) > MAX_FRAMES_PER_BATCH:
        raise FrameError(f"{len(items)} frames in one batch; send at most {MAX_FRAMES_PER_BATCH}")
    frames = []
    for index, item in enumerate(items):
        try:
            frames.append(frame_from_json(item))
        except FrameError as error:
            raise FrameError(f"frames[{index}]: {error}") from None
    return Batch(frames, gateway)


def _authorised(request: web.Request, service: BleService) -> bool:
    token = service.settings.token
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if token is None or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode())


def ble_routes(config: Config, pipeline: Pipeline, notices: Notices) -> list[web.RouteDef]:
    """`notices`: the listener's, so what this endpoint logs about clients shares its budget."""
    service = service_for(config, pipeline)

    def notice(request: web.Request, message: str, *args: object) -> None:
        notices.notice(time.monotonic(), request.remote or "?", message, *args, level=logging.WARNING)

    async def frames(request: web.Request) -> web.Response:
        service.reload_if_changed()  # a new token counts at once, like a new key
        if not _authorised(request, service):
            reason = ("no [ble] token is configured on the server" if service.settings.token is None
                      else "missing or wrong bearer token")
            notice(request, "ble: refused frames from %s: %s", request.remote, reason)
            return web.json_response({"error": reason}, status=401, headers={"WWW-Authenticate": "Bearer"})
        body = await request.read()
        try:
            batch = parse_batch(body)
        except FrameError as error:
            notice(request, "ble: refused a batch from %s: %s (body starts %s)", request.remote,
                   Quoted(str(error)), Quoted(body))
            return web.json_response({"error": str(error)}, status=422)
        try:
            sender = batch.gateway or GatewayId(request.remote or "unknown")  # known by its address
            accepted = await service.accept(batch.frames, gateway=sender, address=request.remote)
        except JournalError as error:  # the gateway keeps the frames and sends them again
            notice(request, "ble: could not store frames from %s: %s", request.remote, error)
            return web.json_response({"error": str(error)}, status=503)
        return web.json_response(accepted.as_json())

    return [web.post(FRAMES_PATH, frames)]


def ble_context(config: Config, pipeline: Pipeline) -> CleanupContext:
    """Rebuilds weigh-in state from the frame log at start, then completes overdue weigh-ins
    (an S400 weight packet whose partner never came) and writes the gateways' held-back news once a
    second; at the end, whatever news the gateways left."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        service = service_for(config, pipeline)
        await service.tick()

        async def ticking() -> None:
            while True:
                await asyncio.sleep(TICK_S)
                try:
                    await service.tick()
                except Exception:  # a failed write is retried on the next tick; the frames are kept
                    log.exception("ble: completing pending weigh-ins failed")

        task = asyncio.create_task(ticking(), name="ble-tick")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        service.gateways.flush_all(time.time())  # before the journal closes, which writes it
        service.frame_log.close()

    return context


def ble_mqtt_context(config: Config, pipeline: Pipeline) -> CleanupContext:
    """Subscribes to OpenMQTTGateway/Theengs raw frames when `[ble.mqtt]` is configured."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        if config.ble.mqtt is None:
            yield
            return
        from interceptor.ble.mqtt import subscribe

        task = asyncio.create_task(subscribe(config.ble.mqtt, service_for(config, pipeline)), name="ble-mqtt")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return context
