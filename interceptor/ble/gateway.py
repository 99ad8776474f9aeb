"""The gateway: frames from a source → on-disk spool → `POST /api/v1/ble/frames` in batches.

Every frame is written to the spool before it is sent and removed only once the server answered
200, which the server gives only after the frames are durable on its side. So a server restart, a
network cut or a gateway restart loses nothing; the price is that a batch whose answer was lost is
sent twice, which the server recognises (interceptor/ble/framelog.py).

Only frames that can hold a scale frame (service data 181d, 181b, fe95) are forwarded: the others
are most of what a radio hears and none of them can become a weigh-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from interceptor.ble.frames import SCALE_UUIDS
from interceptor.ble.sources import FrameSource
from interceptor.ble.spool import Spool

log = logging.getLogger(__name__)

FRAMES_PATH = "/api/v1/ble/frames"
BATCH_FRAMES = 200
BATCH_BYTES = 48 * 1024  # the server reads at most 64 KiB per request
PERSIST_EVERY_S = 0.2
# An empty batch when nothing was sent for this long: the server's Devices page and Home Assistant
# see the gateway as alive while no scale speaks (it forwards only scale frames, rare by nature).
HEARTBEAT_S = 60.0
REQUEST_TIMEOUT_S = 15.0


@dataclass
class GatewayOptions:
    server: str
    token: str
    data_dir: Path
    spool_max: int
    max_retry_s: float = 10.0
    name: str = "gateway"  # how the server's Devices page and Home Assistant call this gateway
    version: str | None = None  # the package's, shown as the gateway's firmware


def batch_prefix(options: GatewayOptions) -> str:
    """The start of every batch: who sends it (interceptor/ble/gateways.py), then the frames' array."""
    identity = {"name": options.name, "version": options.version}
    return '{"gateway":' + json.dumps(identity, separators=(",", ":")) + ',"frames":['


class Gateway:
    def __init__(self, options: GatewayOptions) -> None:
        self.options = options
        self.url = options.server.rstrip("/") + FRAMES_PATH
        self.prefix = batch_prefix(options)
        self.spool = Spool(options.data_dir / "gateway-spool.sqlite", options.spool_max)
        self.sent = 0
        self.rejected = 0
        self.spooled = 0  # frames left in the spool when `run` ended
        self._buffer: list[str] = []
        self._wake = asyncio.Event()
        self._source_done = False

    async def run(self, source: FrameSource) -> None:
        """Until the source ends and the spool is empty (a file), or forever (a scan)."""
        if len(self.spool):
            log.info("gateway: %d frame(s) left in the spool from before; sending them first", len(self.spool))
        persist = asyncio.create_task(self._persist_periodically(), name="gateway-persist")
        try:
            async with aiohttp.ClientSession(
                headers={"Authorization": f"Bearer {self.options.token}"},
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
            ) as session:
                sender = asyncio.create_task(self._send(session), name="gateway-send")
                try:
                    await self._collect(source)
                    await sender
                finally:
                    sender.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sender
        finally:
            persist.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await persist
            self._persist()
            self.spooled = len(self.spool)
            self.spool.close()

    async def _collect(self, source: FrameSource) -> None:
        async for frame in source.frames():
            if frame.service_data.keys() & SCALE_UUIDS:
                self._buffer.append(json.dumps(frame.to_json(), separators=(",", ":")))
                if len(self._buffer) >= BATCH_FRAMES:
                    self._persist()
        self._persist()
        self._source_done = True
        self._wake.set()

    def _persist(self) -> None:
        if self._buffer:
            self.spool.add(self._buffer)
            self._buffer = []
            self._wake.set()

    async def _persist_periodically(self) -> None:
        while True:
            await asyncio.sleep(PERSIST_EVERY_S)
            self._persist()

    async def _send(self, session: aiohttp.ClientSession) -> None:
        retry = 0.5
        trouble: str | None = None
        last_post = -HEARTBEAT_S
        while True:
            rows = self.spool.peek(BATCH_FRAMES, BATCH_BYTES)
            if not rows:
                if self._source_done:
                    return
                if time.monotonic() - last_post >= HEARTBEAT_S:  # a failure shows with the next frames
                    await self._post(session, (self.prefix + "]}").encode())
                    last_post = time.monotonic()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 1.0)
                continue
            body = (self.prefix + ",".join(body for _, body in rows) + "]}").encode()
            problem = await self._post(session, body)
            last_post = time.monotonic()
            if problem is None:
                self.spool.remove(rows[-1][0])
                self.sent += len(rows)
                if trouble is not None:
                    log.info("gateway: %s answers again; sending the spool (%d frame(s) waiting)",
                             self.options.server, len(self.spool))
                trouble, retry = None, 0.5
                continue
            if problem.startswith("refused:"):  # the server will never take this batch: do not block on it
                self.spool.remove(rows[-1][0])
                self.rejected += len(rows)
                log.error("gateway: the server refused %d frame(s): %s", len(rows), problem)
                continue
            if problem != trouble:
                log.warning("gateway: %s; keeping frames in the spool (%d waiting)", problem, len(self.spool))
                trouble = problem
            await asyncio.sleep(retry)
            retry = min(retry * 2, self.options.max_retry_s)

    async def _post(self, session: aiohttp.ClientSession, body: bytes) -> str | None:
        """None when delivered; else why not ("refused: ..." when retrying cannot help)."""
        try:
            async with session.post(self.url, data=body, headers={"Content-Type": "application/json"}) as response:
                text = await response.text()
                if response.status == 200:
                    return None
                if response.status == 401:
                    return ("the server refused the gateway token (401): set the same token as [ble] token "
                            "on the server")
                if response.status in (413, 422):
                    return f"refused: HTTP {response.status} {text[:300]}"
                return f"the server answered HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as error:
            return f"cannot reach {self.options.server} ({error.__class__.__name__}: {error})"
