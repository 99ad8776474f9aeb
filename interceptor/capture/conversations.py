"""Frames to conversations: each TCP connection's HTTP requests paired with their responses.

Sans-I/O: `ConversationBuilder.feed(frame)` returns the conversations that finished, in the order
they started, so a capture of any size is read in one pass with memory bounded by what is open.
Which side is the client comes from the SYN when the handshake was captured; otherwise from who
speaks first in HTTP (a request line or a status line), and failing that the lower port is taken
to be the server's (a scale talks to port 80 from an ephemeral port).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from interceptor.capture.files import Frame, read_frames
from interceptor.capture.http import Message, MessageParser, starts_like
from interceptor.capture.link import SUPPORTED_LINKTYPES, Address, FrameError, decode, endpoint
from interceptor.capture.tcp import Closed, Data, Gap, Opened, Reassembler

MAX_EXCHANGES = 1000
MAX_PROBLEMS = 20
# Finished conversations wait for earlier-started ones to finish, up to this many.
MAX_HELD = 20_000


@dataclass(frozen=True, slots=True)
class Exchange:
    request: Message
    response: Message | None  # None when the capture holds no reply


@dataclass(frozen=True, slots=True)
class Conversation:
    number: int  # in order of the first segment seen, from 1
    client: Address
    server: Address
    started_at: float
    ended_at: float
    handshake: bool  # the SYN was captured, so the stream starts at its first byte
    end: str  # why it ended: fin, reset, idle, end of capture, ...
    exchanges: tuple[Exchange, ...]
    notes: tuple[str, ...]
    retransmitted_segments: int
    overlapping_segments: int


@dataclass
class _Connection:
    opened: Opened
    client: Address | None = None
    parsers: dict[Address, MessageParser] = field(default_factory=dict)  # by sender
    requests: list[Message] = field(default_factory=list)
    responses: list[Message] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    finished: Conversation | None = None

    def __post_init__(self) -> None:
        if self.opened.client is not None:
            self._assign(self.opened.client)

    def _other(self, address: Address) -> Address:
        return self.opened.other if address == self.opened.first_sender else self.opened.first_sender

    def _assign(self, client: Address) -> None:
        self.client = client
        mid_stream = self.opened.client is None
        self.parsers = {client: MessageParser("request", seek=mid_stream),
                        self._other(client): MessageParser("response", seek=mid_stream)}

    def parser(self, sender: Address, first_bytes: bytes) -> MessageParser:
        if self.client is None:
            self._assign(self._guess_client(sender, first_bytes))
        return self.parsers[sender]

    def _guess_client(self, sender: Address, first_bytes: bytes) -> Address:
        if starts_like("request", first_bytes):
            return sender
        if starts_like("response", first_bytes):
            return self._other(sender)
        self.notes.append("client and server guessed from the ports: the capture has neither the handshake nor "
                          "a start line at the beginning")
        other = self._other(sender)
        return sender if sender[1] > other[1] else other

    def add(self, messages: list[Message]) -> None:
        for message in messages:
            if message.kind == "request":
                if len(self.requests) >= MAX_EXCHANGES:
                    continue
                self.requests.append(message)
                if self.client is not None and message.method is not None:
                    self.parsers[self._other(self.client)].request_methods.append(message.method)
            elif message.status is not None and message.status >= 200 and len(self.responses) < MAX_EXCHANGES:
                self.responses.append(message)

    def finish(self, closed: Closed) -> Conversation:
        for parser in list(self.parsers.values()):
            self.add(parser.eof())
        client = self.client or self.opened.first_sender
        server = self._other(client)
        notes = list(self.notes)
        for parser in self.parsers.values():
            notes.extend(f"{parser.kind}s from {endpoint(client if parser.kind == 'request' else server)}: {note}"
                         for note in parser.notes)
        if len(self.requests) >= MAX_EXCHANGES:
            notes.append(f"only the first {MAX_EXCHANGES} requests are kept")
        if len(self.responses) > len(self.requests):
            notes.append(f"{len(self.responses) - len(self.requests)} response(s) without a captured request")
            del self.responses[:len(self.responses) - len(self.requests)]
        exchanges = tuple(
            Exchange(request, self.responses[index] if index < len(self.responses) else None)
            for index, request in enumerate(self.requests)
        )
        return Conversation(
            number=self.opened.connection, client=client, server=server, started_at=self.opened.timestamp,
            ended_at=closed.timestamp, handshake=self.opened.client is not None, end=closed.reason,
            exchanges=exchanges, notes=tuple(notes), retransmitted_segments=closed.retransmitted_segments,
            overlapping_segments=closed.overlapping_segments,
        )


class ConversationBuilder:
    """Frames in (capture order), finished conversations out (in the order they started)."""

    def __init__(self) -> None:
        self._reassembler = Reassembler()
        self._open: OrderedDict[int, _Connection] = OrderedDict()
        self.problems: list[str] = []  # frames that could not be decoded, with where they are
        self._unsupported: set[int] = set()

    def feed(self, frame: Frame) -> list[Conversation]:
        if frame.linktype not in SUPPORTED_LINKTYPES:
            if frame.linktype not in self._unsupported:
                self._unsupported.add(frame.linktype)
                self._problem(frame, f"link type {frame.linktype} is not supported; such frames are skipped")
            return []
        try:
            segment = decode(frame.linktype, frame.data, frame.timestamp)
        except FrameError as error:
            self._problem(frame, str(error))
            return []
        if segment is None:
            return []
        return self._handle(self._reassembler.feed(segment))

    def finish(self) -> list[Conversation]:
        return self._handle(self._reassembler.finish())

    def _problem(self, frame: Frame, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"frame {frame.index} at byte offset {frame.offset}: {text}")
        elif len(self.problems) == MAX_PROBLEMS:
            self.problems.append("more undecodable frames are not listed")

    def _handle(self, events: list[Opened | Data | Gap | Closed]) -> list[Conversation]:
        ready: list[Conversation] = []
        for event in events:
            if isinstance(event, Opened):
                self._open[event.connection] = _Connection(event)
                continue
            connection = self._open[event.connection]
            if isinstance(event, Data):
                connection.add(connection.parser(event.sender, event.data).feed(event.data, event.timestamp))
            elif isinstance(event, Gap):
                if event.sender in connection.parsers:
                    connection.add(connection.parsers[event.sender].gap(event.size))
                else:
                    connection.notes.append(f"the first {event.size} bytes from {endpoint(event.sender)} "
                                            f"were not captured")
            else:
                connection.finished = connection.finish(event)
                ready.extend(self._release())
        return ready

    def _release(self) -> list[Conversation]:
        """Conversations whose predecessors have all finished; all finished ones if too many wait."""
        ready: list[Conversation] = []
        everything = len(self._open) > MAX_HELD
        for number in list(self._open):
            finished = self._open[number].finished
            if finished is None:
                if not everything:
                    break
                continue
            ready.append(finished)
            del self._open[number]
        return ready


def read_conversations(source: Path | BinaryIO, name: str | None = None) -> Iterator[Conversation]:
    """Every conversation in a capture file, streamed."""
    builder = ConversationBuilder()
    for frame in read_frames(source, name):
        yield from builder.feed(frame)
    yield from builder.finish()
