"""Replay a capture's scale requests to our server over real TCP, and judge each reply.

The requests go out byte for byte as captured, one TCP connection per captured conversation (the
scale keeps its connection alive), with one exception: a session id the recorded server issued means
nothing to this one, so once our `session new` reply names its own id, later requests carry ours.
Each reply is read with the same HTTP parser that read the capture, so framing is compared like for
like. Measurements are read back from the journal the server wrote, by id, after each exchange.

By default the server runs in-process on an ephemeral loopback port over a temporary data directory,
so replaying never touches a real journal, and its clock is the capture's time at each request: the
scale's `meastime`s are as recorded, and the server refuses those more than a day ahead of its clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from interceptor.app import JOURNAL, create_app
from interceptor.capture.compat import differences
from interceptor.capture.conversations import Conversation, ConversationBuilder, Exchange
from interceptor.capture.files import CaptureError, read_frames
from interceptor.capture.http import Message, MessageParser
from interceptor.capture.link import endpoint
from interceptor.config import Config, InfluxSettings
from interceptor.hostport import parse_host_port
from interceptor.model import Measurement, iso_utc, utc_from_unix
from interceptor.serverstate import StateError, read_state
from interceptor.store.database import open_reader
from interceptor.store.journal import JournalError, Reader

REPLY_TIMEOUT_S = 10.0
READ_SIZE = 65536
# Every scale endpoint is under /cgi-bin/ (reference §1.1); other HTTP in a router's capture is not replayed.
SCALE_PATHS = ("/cgi-bin/", "http://scalews.withings.net/cgi-bin/")
ClockMode = Literal["capture", "now"]


class ReplayError(Exception):
    """The replay cannot run at all (no server to talk to, unusable journal); the message says why."""


class ReplayClock:
    """The in-process server's clock: the capture's time of the request being replayed, or real time."""

    def __init__(self, mode: ClockMode) -> None:
        self.mode = mode
        self.moment: datetime | None = None

    def __call__(self) -> datetime:
        return self.moment if self.mode == "capture" and self.moment is not None else datetime.now(UTC)


class MeasurementWatch:
    """New measurements in a journal: ids are SQLite rowids, so whatever appears above the highest id
    seen so far is new. `read` runs a query on a journal reader (the in-process server's reader
    threads, or a connection of the command's own)."""

    def __init__(self, read: Callable[[Callable[[Reader], Any]], Awaitable[Any]], last_id: int) -> None:
        self.read = read
        self.last_id = last_id

    @classmethod
    async def over(cls, read: Callable[[Callable[[Reader], Any]], Awaitable[Any]]) -> MeasurementWatch:
        return cls(read, await read(lambda reader: reader.last_id()))

    async def new(self) -> list[Measurement]:
        found: list[Measurement] = await self.read(lambda reader: list(reader.measurements_after(self.last_id)))
        if found:
            self.last_id = found[-1].id
        return found


def _reply_facts(message: Message | None) -> dict[str, Any] | None:
    if message is None:
        return None
    document = message.json()
    return {
        "http_status": message.status,
        "status": document.get("status") if isinstance(document, dict) else None,
        "framing": message.framing,
        "complete": message.complete,
    }


@dataclass
class ExchangeResult:
    index: int
    request: Message
    recorded: Message | None
    replayed: Message | None = None
    error: str | None = None
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measurements: list[Measurement] = field(default_factory=list)

    @property
    def compatible(self) -> bool | None:
        """None when there is nothing to compare with (no recorded reply) or nothing was replayed."""
        if self.error is not None:
            return False
        if self.recorded is None or self.replayed is None:
            return None
        return not self.differences

    def as_json(self) -> dict[str, Any]:
        return {
            "exchange": self.index,
            "at": iso_utc(utc_from_unix(self.request.started_at)),
            "method": self.request.method,
            "target": self.request.target,
            "recorded": _reply_facts(self.recorded),
            "replayed": _reply_facts(self.replayed),
            "compatible": self.compatible,
            "differences": self.differences,
            "notes": self.notes,
            "error": self.error,
            "measurements": [measurement.as_json() for measurement in self.measurements],
        }


@dataclass
class ConversationResult:
    file: str
    conversation: Conversation
    exchanges: list[ExchangeResult] = field(default_factory=list)
    not_replayed: str | None = None  # why the conversation was not sent

    def as_json(self) -> dict[str, Any]:
        conversation = self.conversation
        return {
            "file": self.file,
            "conversation": conversation.number,
            "client": endpoint(conversation.client),
            "server": endpoint(conversation.server),
            "started_at": iso_utc(utc_from_unix(conversation.started_at)),
            "handshake": conversation.handshake,
            "end": conversation.end,
            "retransmitted_segments": conversation.retransmitted_segments,
            "notes": list(conversation.notes),
            "not_replayed": self.not_replayed,
            "exchanges": [exchange.as_json() for exchange in self.exchanges],
        }


@dataclass
class Summary:
    files: int = 0
    conversations: int = 0
    exchanges: int = 0
    compatible: int = 0
    incompatible: int = 0
    not_compared: int = 0
    measurements: int = 0
    errors: list[str] = field(default_factory=list)  # files that could not be read to the end
    warnings: list[str] = field(default_factory=list)  # frames that could not be decoded, and skipped

    def count(self, result: ConversationResult) -> None:
        self.conversations += 1
        for exchange in result.exchanges:
            self.exchanges += 1
            self.measurements += len(exchange.measurements)
            verdict = exchange.compatible
            if verdict is None:
                self.not_compared += 1
            elif verdict:
                self.compatible += 1
            else:
                self.incompatible += 1

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SESSION_ID = re.compile(rb"(sessionid=)([^&\s]*)")
_CONTENT_LENGTH = re.compile(rb"(?im)^(content-length:[ \t]*)\d+")


def _with_session(raw: bytes, recorded: str, ours: str) -> tuple[bytes, bool]:
    """The request with the recorded session id replaced by ours (in the target and the form body),
    its Content-Length corrected."""
    separator = b"\r\n\r\n" if b"\r\n\r\n" in raw else b"\n\n"
    head, _, body = raw.partition(separator)
    old, new = recorded.encode(), ours.encode()

    def swap(found: re.Match[bytes]) -> bytes:
        return found.group(1) + (new if found.group(2) == old else found.group(2))

    new_head, new_body = _SESSION_ID.sub(swap, head), _SESSION_ID.sub(swap, body)
    if new_body != body:
        new_head = _CONTENT_LENGTH.sub(lambda found: found.group(1) + str(len(new_body)).encode(), new_head)
    rewritten = new_head + separator + new_body
    return rewritten, rewritten != raw


def _session_id(message: Message | None) -> str | None:
    document = message.json() if message is not None else None
    body = document.get("body") if isinstance(document, dict) else None
    value = body.get("sessionid") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def _final(reply: Message) -> bool:
    """Not an interim 1xx reply."""
    return reply.status is not None and reply.status >= 200


class _Connection:
    """One kept-alive TCP connection to the server, its replies read with the capture's parser."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = MessageParser("response")
        self.closed = False

    async def exchange(self, request: bytes, method: str) -> Message:
        self.writer.write(request)
        await self.writer.drain()
        self.parser.request_methods.append(method)
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data:
                self.closed = True
                replies = [reply for reply in self.parser.eof() if _final(reply)]
                if replies:
                    return replies[0]
                raise ConnectionError("the server closed the connection without a complete reply")
            replies = [reply for reply in self.parser.feed(data, 0.0) if _final(reply)]
            if replies:
                return replies[0]

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


class Replayer:
    """Sends conversations to a server at host:port and judges the replies."""

    def __init__(self, host: str, port: int, *, clock: ReplayClock | None = None,
                 watch: MeasurementWatch | None = None, timeout: float = REPLY_TIMEOUT_S) -> None:
        self.host = host
        self.port = port
        self.clock = clock
        self.watch = watch
        self.timeout = timeout

    async def conversation(self, file: str, conversation: Conversation) -> ConversationResult:
        result = ConversationResult(file, conversation)
        connection: _Connection | None = None
        sessions: dict[str, str] = {}
        try:
            for index, exchange in enumerate(conversation.exchanges, start=1):
                item = ExchangeResult(index, exchange.request, exchange.response)
                result.exchanges.append(item)
                if connection is None or connection.closed:
                    if connection is not None:
                        await connection.close()
                        item.notes.append("the server had closed the connection: a new one was opened")
                    connection = await self._connect(item)
                    if connection is None:
                        continue
                await self._exchange(connection, exchange, item, sessions)
        finally:
            if connection is not None:
                await connection.close()
        return result

    async def _connect(self, item: ExchangeResult) -> _Connection | None:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        except (OSError, TimeoutError) as error:
            item.error = f"cannot connect to {endpoint((self.host, self.port))}: {error}"
            return None
        return _Connection(reader, writer)

    async def _exchange(self, connection: _Connection, exchange: Exchange, item: ExchangeResult,
                        sessions: dict[str, str]) -> None:
        request = exchange.request
        if not request.complete:
            item.error = "the request is incomplete in the capture, so it was not sent"
            return
        raw = request.raw
        for recorded_id, our_id in sessions.items():
            raw, changed = _with_session(raw, recorded_id, our_id)
            if changed:
                item.notes.append(f"session id {recorded_id} replaced by ours, {our_id}")
        if self.clock is not None:
            self.clock.moment = utc_from_unix(request.started_at)
        try:
            item.replayed = await asyncio.wait_for(connection.exchange(raw, request.method or "POST"), self.timeout)
        except TimeoutError:
            item.error = f"no reply within {self.timeout:g} s"
            connection.closed = True
            return
        except (OSError, ConnectionError) as error:
            item.error = f"connection failed: {error}"
            connection.closed = True
            return
        recorded_id, our_id = _session_id(exchange.response), _session_id(item.replayed)
        if recorded_id and our_id and recorded_id != our_id:
            sessions[recorded_id] = our_id
        if exchange.response is not None:
            item.differences = differences(exchange.response, item.replayed)
        if self.watch is not None:
            item.measurements = await self.watch.new()


@dataclass
class Target:
    host: str
    port: int
    clock: ReplayClock | None
    watch: MeasurementWatch | None
    journal_note: str


def parse_url(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ReplayError(f"--against {url!r}: write the server's base URL, e.g. http://127.0.0.1:8080")
    try:
        return parts.hostname, parts.port or 80
    except ValueError:
        raise ReplayError(f"--against {url!r}: the port is not a number from 1 to 65535") from None


@contextlib.asynccontextmanager
async def target(config: Config, *, against: str | None, ingest: bool, clock_mode: ClockMode) -> AsyncIterator[Target]:
    """Where the requests go, and the journal the measurements are read back from."""
    if against is not None:
        host, port = parse_url(against)
        async with _external_journal(config, against, port) as (watch, note):
            yield Target(host, port, None, watch, note)
        return
    clock = ReplayClock(clock_mode)
    with contextlib.ExitStack() as stack:
        if not ingest:
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="interceptor-replay-")))
            config = config.model_copy(update={"data_dir": scratch, "influx": InfluxSettings()})
        try:
            app = create_app(config, clock=clock)
        except JournalError as error:
            raise ReplayError(str(error)) from None
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            host, port = runner.addresses[0][:2]
            note = (f"journal {config.data_dir / 'journal.sqlite'}" if ingest
                    else "temporary journal (use --ingest to keep the measurements)")
            yield Target(host, port, clock, await MeasurementWatch.over(app[JOURNAL].read), note)
        finally:
            await runner.cleanup()


def _serves_here(config: Config, port: int) -> bool:
    """Does the server whose state is in the configured data dir run, and listen for HTTP on `port`?"""
    try:
        state = read_state(config.data_dir)
    except StateError:
        return False
    if state is None or not state.running():
        return False
    return any(parse_host_port(address)[1] == port for address in state.listening.get("HTTP", []))


@contextlib.asynccontextmanager
async def _external_journal(config: Config, url: str, port: int) -> AsyncIterator[tuple[MeasurementWatch | None,
                                                                                        str]]:
    """The running server's journal, when the configured data dir is that server's (its state file says
    it listens on that port); otherwise no read-back, and the note says whose journal is unknown."""
    path = config.data_dir / "journal.sqlite"
    if not path.exists() or not _serves_here(config, port):
        yield None, (f"the journal of the server at {url} is not {config.data_dir}: its measurements are not read"
                     " back (pass the --data-dir it runs with)")
        return
    try:
        connection = open_reader(path)
    except JournalError as error:
        raise ReplayError(str(error)) from None
    reader = Reader(connection)

    async def read(query: Callable[[Reader], Any]) -> Any:
        return query(reader)  # a client's own connection: nothing else waits on this loop

    try:
        yield await MeasurementWatch.over(read), f"journal {path}"
    finally:
        connection.close()


async def check_reachable(host: str, port: int, timeout: float = REPLY_TIMEOUT_S) -> None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as error:
        raise ReplayError(f"cannot reach {endpoint((host, port))}: {error}; is `interceptor serve` running?") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def replay_files(
    paths: Iterable[Path],
    replayer: Replayer,
    *,
    on_result: Callable[[ConversationResult], None],
    on_progress: Callable[[int], None] | None = None,
) -> Summary:
    """Replay every conversation with at least one request, file after file, streaming the results.
    A file that cannot be read is reported in the summary; the others are still replayed."""
    summary = Summary()
    for path in paths:
        summary.files += 1
        builder = ConversationBuilder()
        position = 0
        try:
            for frame in read_frames(path):
                if on_progress is not None:
                    on_progress(frame.offset - position)
                    position = frame.offset
                for conversation in builder.feed(frame):
                    await _replay_one(path, conversation, replayer, summary, on_result)
        except CaptureError as error:
            summary.errors.append(str(error))
        except OSError as error:
            summary.errors.append(f"{path}: cannot read: {error.strerror or error}")
        for conversation in builder.finish():
            await _replay_one(path, conversation, replayer, summary, on_result)
        summary.warnings.extend(f"{path}: {problem}" for problem in builder.problems)
        if on_progress is not None:
            with contextlib.suppress(OSError):
                on_progress(path.stat().st_size - position)
    return summary


async def _replay_one(path: Path, conversation: Conversation, replayer: Replayer, summary: Summary,
                      on_result: Callable[[ConversationResult], None]) -> None:
    if not conversation.exchanges:
        result = ConversationResult(str(path), conversation, not_replayed="no HTTP requests")
    elif not any((exchange.request.target or "").startswith(SCALE_PATHS) for exchange in conversation.exchanges):
        result = ConversationResult(str(path), conversation,
                                    not_replayed="no request to /cgi-bin/: not a scale conversation")
    else:
        result = await replayer.conversation(str(path), conversation)
    summary.count(result)
    on_result(result)
