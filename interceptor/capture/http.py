"""HTTP/1.x messages from one direction of a reassembled TCP stream, sans-I/O and tolerant.

h11 was the obvious library, but it is a conformant peer, not an observer: it stops for good at the
first protocol error, cannot start in the middle of a stream, has no notion of bytes missing from a
capture, and re-frames bodies so the wire framing (chunk sizes, LF-only lines) is lost. A capture
needs the opposite: keep going after garbage, resynchronise on the next start line, say where bytes
were missing, and report exactly how each message was framed. The subset scales use is small
(start line, headers, Content-Length or chunked bodies, keep-alive), so this parser is written here.

The same parser reads replies during replay, so recorded and replayed replies are described by the
same code.
"""

from __future__ import annotations

import json
import re
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["request", "response"]
Framing = Literal["content-length", "chunked", "close", "none"]

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 1 << 20
MAX_CHUNK_LINE = 1024
MAX_NOTES = 20
# Kept while looking for a start line, in case one is split across segments.
SEEK_TAIL = 64

_REQUEST_START = re.compile(rb"(?:GET|POST|PUT|HEAD|DELETE|OPTIONS|PATCH|TRACE|CONNECT) [!-~]+ HTTP/1\.[01]\r?\n")
_RESPONSE_START = re.compile(rb"HTTP/1\.[01] [1-5]\d\d[ \r\n]")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEAD_END = re.compile(rb"\r?\n\r?\n")


def starts_like(kind: Kind, data: bytes) -> bool:
    """Do these bytes begin with a request line (or a status line)?"""
    return (_REQUEST_START if kind == "request" else _RESPONSE_START).match(data) is not None


@dataclass(frozen=True, slots=True)
class Message:
    """One request or response as it was on the wire; `body` is after de-chunking."""

    kind: Kind
    version: str
    method: str | None  # requests
    target: str | None  # requests
    status: int | None  # responses
    reason: str | None  # responses
    headers: tuple[tuple[str, str], ...]
    body: bytes
    framing: Framing
    chunk_sizes: tuple[int, ...]
    raw: bytes  # head and body exactly as framed on the wire
    stream_offset: int
    started_at: float
    complete: bool = True

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def json(self) -> Any:
        """The body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError):
            return None

    @property
    def head(self) -> str:
        return f"{self.method} {self.target}" if self.kind == "request" else f"{self.status} {self.reason}"


@dataclass
class _Head:
    version: str
    method: str | None
    target: str | None
    status: int | None
    reason: str | None
    headers: list[tuple[str, str]]
    size: int
    started_at: float
    offset: int


@dataclass
class MessageParser:
    """Feed one direction's bytes; get complete `Message`s back. `notes` says what was skipped and why.

    Start with `seek=True` when the stream may begin inside a message (no handshake captured): bytes
    before the first start line are skipped, and said so."""

    kind: Kind
    seek: bool = False
    notes: list[str] = field(default_factory=list)
    # The method of each request not yet answered, so a reply to HEAD is known to have no body.
    request_methods: deque[str] = field(default_factory=deque)

    def __post_init__(self) -> None:
        self._buffer = bytearray()
        self._base = 0  # stream offset of _buffer[0]
        self._marks: deque[tuple[int, float]] = deque()  # (stream offset, capture time) of each feed
        self._state = "seek" if self.seek else "head"
        self._head: _Head | None = None
        self._body = bytearray()
        self._chunks: list[int] = []
        self._position = 0  # parse position inside _buffer for the message in progress
        self._remaining = 0
        self._framing: Framing = "none"
        self._skipped = 0

    # -- input -----------------------------------------------------------------------------------

    def feed(self, data: bytes, timestamp: float) -> list[Message]:
        self._marks.append((self._base + len(self._buffer), timestamp))
        self._buffer += data
        return self._run()

    def gap(self, size: int) -> list[Message]:
        """Bytes the capture missed: the message in progress cannot be trusted; look for the next."""
        where = self._base + len(self._buffer)
        messages = self._abandon(f"{size} bytes missing from the capture at stream offset {where}")
        self._base += len(self._buffer) + size
        self._buffer.clear()
        self._marks.clear()
        self._reset("seek")
        return messages

    def eof(self) -> list[Message]:
        """The sender closed: a read-until-close body ends here; anything else unfinished is noted."""
        if self._state == "until-close" and self._head is not None:
            self._body += self._buffer[self._position:]
            self._position = len(self._buffer)
            return [self._finish()]
        if self._state in ("head", "seek") and not self._buffer.strip():
            return []
        messages = self._abandon(f"stream ended inside a {self.kind}")
        self._reset("seek")
        return messages

    # -- the state machine ---------------------------------------------------------------------

    def _run(self) -> list[Message]:
        messages: list[Message] = []
        # Each pass consumes bytes or finishes a message; the bound only guards against a bug.
        for _ in range(len(self._buffer) + 8):
            progressed = self._step(messages)
            if not progressed:
                break
        return messages

    def _step(self, messages: list[Message]) -> bool:
        state = self._state
        if state == "seek":
            return self._seek()
        if state == "head":
            return self._parse_head(messages)
        if state == "body":
            available = len(self._buffer) - self._position
            take = min(available, self._remaining)
            self._body += self._buffer[self._position:self._position + take]
            self._position += take
            self._remaining -= take
            if self._remaining == 0:
                messages.append(self._finish())
                return True
            return False
        if state == "until-close":
            self._body += self._buffer[self._position:]
            self._position = len(self._buffer)
            if len(self._body) > MAX_BODY_BYTES:
                messages.extend(self._malformed(f"body read until close exceeds {MAX_BODY_BYTES} bytes"))
                return True
            return False
        return self._chunked(messages)

    def _seek(self) -> bool:
        pattern = _REQUEST_START if self.kind == "request" else _RESPONSE_START
        found = pattern.search(self._buffer)
        if found is None:
            if len(self._buffer) > SEEK_TAIL:
                self._drop(len(self._buffer) - SEEK_TAIL, counted=True)
            return False
        self._drop(found.start(), counted=True)
        if self._skipped:
            self._note(f"skipped {self._skipped} bytes before a {self.kind} start line")
            self._skipped = 0
        self._state = "head"
        return True

    def _parse_head(self, messages: list[Message]) -> bool:
        blank = len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))
        if blank:  # empty lines between messages are allowed and ignored
            self._drop(blank, counted=False)
        end = _HEAD_END.search(self._buffer, 0, MAX_HEAD_BYTES + 4)
        if end is None:
            if len(self._buffer) > MAX_HEAD_BYTES:
                messages.extend(self._malformed(f"no end of {self.kind} head within {MAX_HEAD_BYTES} bytes"))
                return True
            if self._buffer and not self._plausible_start():
                messages.extend(self._malformed(f"bytes that are not an HTTP {self.kind}"))
                return True
            return False
        head = self._head_fields(bytes(self._buffer[:end.start()]), end.end())
        if head is None:
            messages.extend(self._malformed(f"malformed {self.kind} head"))
            return True
        self._head = head
        self._position = end.end()
        self._body.clear()
        self._chunks.clear()
        framing = self._body_framing(head)
        if framing is None:
            messages.extend(self._malformed(f"{self.kind} body length is not readable"))
            return True
        return True

    def _plausible_start(self) -> bool:
        """Could the buffered bytes still grow into a start line? Refuse garbage early, before 64 KiB."""
        first = bytes(self._buffer[:16])
        if self.kind == "response":
            return first.startswith(b"HTTP/1.") or b"HTTP/1.".startswith(first)
        method, space, _ = first.partition(b" ")
        return method.isalpha() and method.isupper() and len(method) <= 10 and bool(space or len(first) <= 10)

    def _head_fields(self, text: bytes, size: int) -> _Head | None:
        lines = text.decode("latin-1").split("\n")
        start = lines[0].rstrip("\r")
        parts = start.split(" ", 2)
        method = target = reason = None
        status = None
        if self.kind == "request":
            if len(parts) != 3 or not _TOKEN.fullmatch(parts[0]) or not parts[2].startswith("HTTP/1."):
                return None
            method, target, version = parts
        else:
            if (len(parts) < 2 or not parts[0].startswith("HTTP/1.") or len(parts[1]) != 3
                    or not _ascii_digits(parts[1])):
                return None
            version, status, reason = parts[0], int(parts[1]), parts[2] if len(parts) == 3 else ""
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            line = line.rstrip("\r")
            if line[:1] in (" ", "\t") and headers:  # obsolete line folding
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip()}")
                continue
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                return None
            headers.append((name, value.strip()))
        return _Head(version, method, target, status, reason, headers, size, self._time_at(self._base), self._base)

    def _body_framing(self, head: _Head) -> Framing | None:
        headers = {name.lower(): value for name, value in head.headers}
        codings = [part.strip().lower() for part in headers.get("transfer-encoding", "").split(",") if part.strip()]
        no_body = self.kind == "response" and (
            head.status is not None and (head.status < 200 or head.status in (204, 304))
        )
        if self.kind == "response" and head.status is not None and head.status >= 200:
            method = self.request_methods.popleft() if self.request_methods else None
            no_body = no_body or method == "HEAD"
        if no_body:
            self._framing, self._state, self._remaining = "none", "body", 0
        elif codings and codings[-1] == "chunked":
            self._framing, self._state = "chunked", "chunk-size"
        elif "content-length" in headers:
            values = {value.strip() for value in headers["content-length"].split(",")}
            if len(values) != 1 or not _ascii_digits(next(iter(values))):
                return None
            length = int(next(iter(values)))
            if length > MAX_BODY_BYTES:
                return None
            self._framing, self._state, self._remaining = "content-length", "body", length
        elif self.kind == "response":
            self._framing, self._state = "close", "until-close"
        else:
            self._framing, self._state, self._remaining = "none", "body", 0
        return self._framing

    def _chunked(self, messages: list[Message]) -> bool:
        if self._state == "chunk-data":
            available = len(self._buffer) - self._position
            take = min(available, self._remaining)
            self._body += self._buffer[self._position:self._position + take]
            self._position += take
            self._remaining -= take
            if self._remaining:
                return False
            self._state = "chunk-end"
            return True
        line_end = self._buffer.find(b"\n", self._position, self._position + MAX_CHUNK_LINE)
        if line_end < 0:
            if len(self._buffer) - self._position > MAX_CHUNK_LINE:
                messages.extend(self._malformed("chunk line too long"))
                return True
            return False
        line = bytes(self._buffer[self._position:line_end]).rstrip(b"\r")
        self._position = line_end + 1
        if self._state == "chunk-end":
            if line:
                messages.extend(self._malformed("chunk data not followed by CRLF"))
                return True
            self._state = "chunk-size"
            return True
        if self._state == "trailers":
            if not line:
                messages.append(self._finish())
            return True
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            size = -1
        if size < 0 or not size_text or len(self._body) + size > MAX_BODY_BYTES:
            messages.extend(self._malformed(f"bad chunk size {size_text[:20]!r}"))
            return True
        if size == 0:
            self._state = "trailers"
            return True
        self._chunks.append(size)
        self._state, self._remaining = "chunk-data", size
        return True

    # -- finishing, abandoning ---------------------------------------------------------------------

    def _message(self, complete: bool) -> Message:
        head = self._head
        assert head is not None
        return Message(
            kind=self.kind, version=head.version, method=head.method, target=head.target, status=head.status,
            reason=head.reason, headers=tuple(head.headers), body=bytes(self._body), framing=self._framing,
            chunk_sizes=tuple(self._chunks), raw=bytes(self._buffer[:self._position]), stream_offset=head.offset,
            started_at=head.started_at, complete=complete,
        )

    def _finish(self) -> Message:
        message = self._message(complete=True)
        self._drop(self._position, counted=False)
        self._reset("head")
        return message

    def _abandon(self, why: str) -> list[Message]:
        """Note why the message in progress ends here; keep it, marked incomplete, if its head was read."""
        if self._head is None:
            self._note(why)
            return []
        self._position = max(self._position, min(len(self._buffer), self._head.size))
        message = self._message(complete=False)
        self._note(f"{why}; {self.kind} '{message.head}' is incomplete")
        return [message]

    def _malformed(self, why: str) -> list[Message]:
        offset = self._base
        messages = self._abandon(f"{why} at stream offset {offset}")
        self._drop(max(1, self._position), counted=True)
        self._reset("seek")
        return messages

    def _reset(self, state: str) -> None:
        self._state = state
        self._head = None
        self._position = 0
        self._remaining = 0
        self._body = bytearray()
        self._chunks = []
        self._framing = "none"

    def _drop(self, count: int, *, counted: bool) -> None:
        count = min(count, len(self._buffer))
        del self._buffer[:count]
        self._base += count
        if counted:
            self._skipped += count
        while len(self._marks) > 1 and self._marks[1][0] <= self._base:
            self._marks.popleft()

    def _time_at(self, offset: int) -> float:
        timestamp = self._marks[0][1] if self._marks else 0.0
        for mark_offset, mark_time in self._marks:
            if mark_offset > offset:
                break
            timestamp = mark_time
        return timestamp

    def _note(self, text: str) -> None:
        if len(self.notes) < MAX_NOTES:
            self.notes.append(text)
        elif len(self.notes) == MAX_NOTES:
            self.notes.append(f"more problems in this {self.kind} stream are not listed")


def _ascii_digits(text: str) -> bool:
    """0-9 only: `str.isdigit` also takes a head's Latin-1 superscripts ("\u00b2"), which `int` refuses."""
    return text.isascii() and text.isdigit()
