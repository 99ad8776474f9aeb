"""`interceptor serve --capture DIR`: every scale connection written as a pcapng file.

A user with a new firmware can send us exactly what their scale said and what we answered, without
running tcpdump on their router. The bytes are tapped at the transport, below aiohttp: the protocol
factory is wrapped so each connection's `data_received` and each `write` to its transport are
recorded as they happen, before any parsing, so a request aiohttp rejects is recorded too. The
kernel keeps the real packets to itself, so the TCP/IP framing is synthesised around those bytes
(`synth.py`): handshake, segments with sequence and acknowledgement numbers, the close.

Users are asked to share these files, so no secret is written: what the client sends goes through
`masking.StreamMasker` (the scale's `hash`, the gateway's `Authorization: Bearer` token, any
secret-named field, become `*`, byte for byte, so lengths and sequence numbers stay right). The
directory is created 0700 and each file 0600, like the journal.

Files are written as the connection goes (under a `.part` name, renamed when it closes), one per
connection, and the directory is kept under `max_files` files and `max_bytes` bytes by removing the
oldest. Recording never costs a reply: a write error is logged once and that recording stops. The
tap runs inside the listener's guard (`interceptor.listeners`): a connection it refuses is not
recorded.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO, cast

from interceptor.capture.link import Address
from interceptor.capture.synth import PcapngWriter, TcpSynthesiser, TimedFrame
from interceptor.listeners import ForwardingTransport
from interceptor.masking import StreamMasker
from interceptor.paths import private_dir

log = logging.getLogger(__name__)

SUFFIX = ".pcapng"
PARTIAL = ".part"
BLOCK_OVERHEAD = 36  # an enhanced packet block around a frame: header, trailer, padding
CLOSE_RESERVE = 512  # kept below the size cap for the closing frames


@dataclass(frozen=True)
class RecordingSettings:
    directory: Path
    max_files: int = 1000
    max_bytes: int = 100 * 1024 * 1024


def _address(peer: Any) -> Address | None:
    """(host, port) from a socket address; IPv4-mapped IPv6 addresses as plain IPv4."""
    if not isinstance(peer, tuple) or len(peer) < 2:
        return None
    try:
        host = ipaddress.ip_address(str(peer[0]).split("%")[0])
    except ValueError:
        return None
    if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped is not None:
        host = host.ipv4_mapped
    return str(host), int(peer[1])


class Recorder:
    """The capture directory: names new files, and removes the oldest beyond the limits."""

    def __init__(self, settings: RecordingSettings) -> None:
        self.settings = settings
        private_dir(settings.directory)
        existing = sorted(settings.directory.glob(f"*{SUFFIX}"))
        self._files: deque[tuple[Path, int]] = deque((path, path.stat().st_size) for path in existing)
        self._total = sum(size for _, size in self._files)
        self._enforce()

    def open(self, client: Address, server: Address, now: float) -> ConnectionRecording | None:
        stamp = datetime.fromtimestamp(now, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{client[0].replace(':', '_')}-{client[1]}"
        path = self.settings.directory / f"{name}{SUFFIX}{PARTIAL}"
        try:
            stream = os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")
        except OSError as error:
            log.warning("capture: cannot create %s: %s; this connection is not recorded", path, error)
            return None
        return ConnectionRecording(self, path, stream, TcpSynthesiser(client, server), now)

    def finished(self, path: Path, size: int) -> None:
        self._files.append((path, size))
        self._total += size
        self._enforce()

    def _enforce(self) -> None:
        while self._files and (len(self._files) > self.settings.max_files or self._total > self.settings.max_bytes):
            oldest, size = self._files.popleft()
            self._total -= size
            try:
                oldest.unlink(missing_ok=True)
            except OSError as error:
                log.warning("capture: cannot remove %s: %s", oldest, error)


class ConnectionRecording:
    """One connection's file. Data beyond the size cap is dropped, and the file says where."""

    def __init__(self, recorder: Recorder, path: Path, stream: BinaryIO, synth: TcpSynthesiser, now: float) -> None:
        self.recorder = recorder
        self.path = path
        self.stream = stream
        self.synth = synth
        self.client_closed = False
        self.failed = False
        self.truncated = False
        self.writer = self._guard(lambda: PcapngWriter(stream, synth.linktype))
        self._write(synth.handshake(now))

    def _guard(self, action: Callable[[], Any]) -> Any:
        if self.failed:
            return None
        try:
            return action()
        except OSError as error:
            self.failed = True
            log.warning("capture: writing %s failed (%s); this connection is no longer recorded", self.path, error)
            return None

    def _write(self, frames: list[TimedFrame], *, data: bool = False) -> None:
        """Data frames stop at the size cap, keeping room for the close; other frames always go."""
        if self.writer is None:
            return
        if data:
            if self.truncated:
                return
            size = sum(len(frame) + BLOCK_OVERHEAD for _, frame in frames)
            if (self._guard(self.stream.tell) or 0) + size > self.recorder.settings.max_bytes - CLOSE_RESERVE:
                self.truncated = True
                log.warning("capture: %s would exceed %d bytes; the rest of this connection is not recorded",
                            self.path, self.recorder.settings.max_bytes)
                return
        self._guard(lambda: self.writer.write(frames))

    def received(self, data: bytes, now: float) -> None:
        self._write(self.synth.send(self.synth.client, data, now), data=True)

    def sent(self, data: bytes, now: float) -> None:
        self._write(self.synth.send(self.synth.server, data, now), data=True)

    def client_eof(self, now: float) -> None:
        if not self.client_closed:
            self.client_closed = True
            self._write(self.synth.fin(self.synth.client, now))

    def close(self, now: float) -> None:
        if self.client_closed:
            self._write(self.synth.fin(self.synth.server, now) + self.synth.ack(self.synth.client, now + 1e-4))
        else:
            self._write(self.synth.close(now, first=self.synth.server))
        final = self.path.with_name(self.path.name.removesuffix(PARTIAL))
        try:
            size = self.stream.tell()
            self.stream.close()
            self.path.rename(final)
        except OSError as error:
            log.warning("capture: cannot finish %s: %s", self.path, error)
            return
        self.recorder.finished(final, size)


class _TappedTransport(ForwardingTransport):
    """The real transport, with every write recorded first."""

    def __init__(self, real: asyncio.Transport, tap: _TapProtocol) -> None:
        super().__init__(real)
        self._tap = tap

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._tap.sent(bytes(data))
        self._real.write(data)


class _TapProtocol(asyncio.Protocol):
    """Stands between the event loop and aiohttp's protocol for one connection."""

    def __init__(self, inner: asyncio.Protocol, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder
        self._recording: ConnectionRecording | None = None
        self._endpoints: tuple[Address, Address] | None = None  # until the first byte
        self._opened_at = 0.0
        self._masker = StreamMasker()  # what the client sends, secrets masked

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = _address(transport.get_extra_info("peername"))
        server = _address(transport.get_extra_info("sockname"))
        if client is not None and server is not None:
            self._endpoints, self._opened_at = (client, server), time.time()
            # uvloop's transports do not derive from asyncio.Transport but offer the same methods.
            transport = _TappedTransport(cast(asyncio.Transport, transport), self)
        self._inner.connection_made(transport)

    def _recording_now(self) -> ConnectionRecording | None:
        """The file is created with the first byte: a connection that says nothing (a port probe, a
        health check) is not a conversation and leaves no file."""
        if self._endpoints is not None:
            self._recording = self._recorder.open(*self._endpoints, self._opened_at)
            self._endpoints = None
        return self._recording

    def sent(self, data: bytes) -> None:
        recording = self._recording_now()
        if recording is not None:
            now = time.time()
            self._record_received(self._masker.flush(), now)  # the request is whole: its end goes first
            recording.sent(data, now)

    def _record_received(self, masked: bytes, now: float) -> None:
        if masked and self._recording is not None:
            self._recording.received(masked, now)

    def data_received(self, data: bytes) -> None:
        if self._recording_now() is not None:
            self._record_received(self._masker.feed(data), time.time())
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._recording is not None:
            now = time.time()
            self._record_received(self._masker.flush(final=True), now)
            self._recording.client_eof(now)
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._recording is not None:
            now = time.time()
            self._record_received(self._masker.flush(final=True), now)
            self._recording.close(now)
            self._recording = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


def recording_tap(settings: RecordingSettings) -> Callable[[asyncio.Protocol], asyncio.Protocol]:
    """For `listeners.start_listener(..., tap=...)`: each connection's protocol wrapped in a recording."""
    recorder = Recorder(settings)
    log.info("recording every scale conversation to %s (at most %d files, %d bytes)",
             settings.directory, settings.max_files, settings.max_bytes)
    return lambda inner: _TapProtocol(inner, recorder)
