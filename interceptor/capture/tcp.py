"""TCP reassembly, sans-I/O: segments in, each direction's bytes out, in order, once.

Captures from a router are not tidy: segments arrive out of order, are retransmitted, overlap, the
capture may start after the handshake or in the middle of a transfer, and frames are lost. The
reassembler turns that into, per connection and direction, a sequence of `Data` (bytes at a stream
offset) and `Gap` (bytes that were never captured) events, so the HTTP layer above sees a plain
byte stream and knows exactly where it cannot trust it.

Policy: a byte is delivered once, the first time a segment carrying it becomes deliverable (the
lowest-starting segment wins, then the earliest captured); later copies are counted, not delivered.
Memory is bounded: out-of-order data waiting for a hole is capped per direction (past the cap the
hole is declared a gap), the number of open connections is capped (the least recently active is
closed), and connections idle for `idle_timeout` seconds of capture time are closed.
"""

from __future__ import annotations

import heapq
import itertools
from collections import OrderedDict
from dataclasses import dataclass

from interceptor.capture.link import Address, Segment

SEQ_SPACE = 1 << 32
HALF_SEQ_SPACE = 1 << 31
MAX_PENDING_BYTES = 1 << 20
MAX_PENDING_SEGMENTS = 4096
IDLE_TIMEOUT_S = 300.0
MAX_CONNECTIONS = 10_000
# Closed connections remembered so that their late retransmissions and final ACKs are not taken
# for a new connection that started mid-stream.
REMEMBERED_CLOSED = 4096


@dataclass(frozen=True, slots=True)
class Opened:
    connection: int
    timestamp: float
    first_sender: Address  # the side that sent the first segment seen
    other: Address
    client: Address | None  # known from the SYN; None when the handshake was not captured


@dataclass(frozen=True, slots=True)
class Data:
    connection: int
    sender: Address
    offset: int  # of the first byte, in the sender's stream
    data: bytes
    timestamp: float


@dataclass(frozen=True, slots=True)
class Gap:
    connection: int
    sender: Address
    offset: int
    size: int


@dataclass(frozen=True, slots=True)
class Closed:
    connection: int
    timestamp: float
    reason: str  # "fin", "reset", "idle", "reused", "evicted", "end of capture"
    retransmitted_segments: int
    overlapping_segments: int


Event = Opened | Data | Gap | Closed


class _Direction:
    """One sender's byte stream: what has been delivered, and what waits for a hole to fill."""

    def __init__(self, connection: int, sender: Address) -> None:
        self.connection = connection
        self.sender = sender
        self.base: int | None = None  # sequence number of stream offset 0
        self.syn_seen = False
        self.next = 0  # offset of the next byte to deliver
        self.pending: list[tuple[int, int, bytes, float, int]] = []  # (start, arrival, data, time, end)
        self.pending_bytes = 0
        self.arrivals = itertools.count()
        self.fin_at: int | None = None
        self.retransmitted = 0
        self.overlapping = 0

    @property
    def finished(self) -> bool:
        return self.fin_at is not None and self.next >= self.fin_at and not self.pending

    def syn(self, seq: int) -> None:
        if not self.syn_seen and self.next == 0 and not self.pending:
            self.base = (seq + 1) % SEQ_SPACE
            self.syn_seen = True

    def _offset(self, seq: int) -> int:
        """Stream offset of `seq`, unwrapped around the next expected byte (sequence numbers wrap)."""
        assert self.base is not None
        difference = (seq - self.base - self.next) % SEQ_SPACE
        if difference >= HALF_SEQ_SPACE:
            difference -= SEQ_SPACE
        return self.next + difference

    def add(self, segment: Segment) -> list[Data | Gap]:
        seq = (segment.seq + 1) % SEQ_SPACE if segment.syn else segment.seq
        if self.base is None:
            self.base = seq  # the capture started mid-stream: the first byte seen is offset 0
        start = self._offset(seq)
        end = start + segment.length
        if segment.fin and self.fin_at is None:
            self.fin_at = max(end, self.next)
        if segment.length == 0:
            return self._drain()
        if end <= self.next:
            self.retransmitted += 1
            return self._drain()
        if start < self.next:
            self.overlapping += 1
        heapq.heappush(self.pending, (start, next(self.arrivals), segment.payload, segment.timestamp, end))
        self.pending_bytes += len(segment.payload)
        events = self._drain()
        while self.pending and (self.pending_bytes > MAX_PENDING_BYTES or len(self.pending) > MAX_PENDING_SEGMENTS):
            events.extend(self._skip_to_pending())
        return events

    def _skip_to_pending(self) -> list[Data | Gap]:
        """Give up on the hole before the first waiting segment: report it, deliver what follows."""
        start = self.pending[0][0]
        events: list[Data | Gap] = []
        if start > self.next:
            events.append(Gap(self.connection, self.sender, self.next, start - self.next))
            self.next = start
        events.extend(self._drain())
        return events

    def _drain(self) -> list[Data | Gap]:
        events: list[Data | Gap] = []
        while self.pending and self.pending[0][0] <= self.next:
            start, _, data, timestamp, end = heapq.heappop(self.pending)
            self.pending_bytes -= len(data)
            if end <= self.next:
                self.overlapping += 1  # wholly covered by bytes already delivered
                continue
            chunk = data[self.next - start:]
            if chunk:
                events.append(Data(self.connection, self.sender, self.next, chunk, timestamp))
                self.next += len(chunk)
            if end > self.next:  # the snapshot length cut this segment
                events.append(Gap(self.connection, self.sender, self.next, end - self.next))
                self.next = end
        return events

    def flush(self) -> list[Data | Gap]:
        """Deliver everything still waiting, declaring the holes between; and the bytes before a FIN
        that never arrived."""
        events: list[Data | Gap] = []
        while self.pending:
            events.extend(self._skip_to_pending())
        if self.fin_at is not None and self.fin_at > self.next:
            events.append(Gap(self.connection, self.sender, self.next, self.fin_at - self.next))
            self.next = self.fin_at
        return events


class _Connection:
    def __init__(self, number: int, first: Address, other: Address, timestamp: float) -> None:
        self.number = number
        self.directions = {first: _Direction(number, first), other: _Direction(number, other)}
        self.client: Address | None = None
        self.client_isn: int | None = None
        self.last_seen = timestamp
        self.reset = False

    @property
    def closed(self) -> bool:
        return self.reset or all(direction.finished for direction in self.directions.values())

    def is_new_attempt(self, segment: Segment) -> bool:
        """A SYN that does not belong here: the 4-tuple was reused for a new connection."""
        return segment.syn and not segment.has_ack and self.client_isn is not None and segment.seq != self.client_isn

    def add(self, segment: Segment) -> list[Data | Gap]:
        direction = self.directions[segment.source]
        if segment.syn:
            if self.client is None:
                self.client = segment.destination if segment.has_ack else segment.source
            if not segment.has_ack:
                self.client_isn = segment.seq
            direction.syn(segment.seq)
        if segment.rst:
            self.reset = True
            return self.flush()
        return direction.add(segment)

    def flush(self) -> list[Data | Gap]:
        return [event for direction in self.directions.values() for event in direction.flush()]

    def closed_event(self, timestamp: float, reason: str) -> Closed:
        return Closed(self.number, timestamp, reason,
                      sum(direction.retransmitted for direction in self.directions.values()),
                      sum(direction.overlapping for direction in self.directions.values()))


class Reassembler:
    """Feed segments in capture order; get `Opened`, `Data`, `Gap` and `Closed` events back."""

    def __init__(self, *, idle_timeout: float = IDLE_TIMEOUT_S, max_connections: int = MAX_CONNECTIONS) -> None:
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self._connections: OrderedDict[tuple[Address, Address], _Connection] = OrderedDict()  # least recent first
        self._closed: OrderedDict[tuple[Address, Address], None] = OrderedDict()
        self._numbers = itertools.count(1)

    def feed(self, segment: Segment) -> list[Event]:
        key = (min(segment.source, segment.destination), max(segment.source, segment.destination))
        events: list[Event] = self.expire(segment.timestamp)
        connection = self._connections.get(key)
        if connection is not None and connection.is_new_attempt(segment):
            events.extend(self._close(key, segment.timestamp, "reused"))
            connection = None
        if connection is None:
            if not (segment.syn or segment.length) or (key in self._closed and not segment.syn):
                return events  # a bare ACK, FIN or RST, or a late copy from a closed connection
            self._closed.pop(key, None)
            connection = _Connection(next(self._numbers), segment.source, segment.destination, segment.timestamp)
            self._connections[key] = connection
            client = segment.source if segment.syn and not segment.has_ack else None
            if segment.syn and segment.has_ack:
                client = segment.destination
            events.append(Opened(connection.number, segment.timestamp, segment.source, segment.destination, client))
            while len(self._connections) > self.max_connections:
                events.extend(self._close(next(iter(self._connections)), segment.timestamp, "evicted"))
        connection.last_seen = segment.timestamp
        self._connections.move_to_end(key)
        events.extend(connection.add(segment))
        if connection.closed:
            events.extend(self._close(key, segment.timestamp, "reset" if connection.reset else "fin"))
        return events

    def expire(self, now: float) -> list[Event]:
        """Close connections idle for longer than the idle timeout (in capture time)."""
        events: list[Event] = []
        while self._connections:
            key, connection = next(iter(self._connections.items()))
            if connection.last_seen >= now - self.idle_timeout:
                break
            events.extend(self._close(key, connection.last_seen, "idle"))
        return events

    def finish(self) -> list[Event]:
        """The capture ended: every open connection ends here, its waiting data delivered around gaps."""
        events: list[Event] = []
        while self._connections:
            key, connection = next(iter(self._connections.items()))
            events.extend(self._close(key, connection.last_seen, "end of capture"))
        return events

    def _close(self, key: tuple[Address, Address], timestamp: float, reason: str) -> list[Event]:
        connection = self._connections.pop(key)
        events: list[Event] = list(connection.flush())
        events.append(connection.closed_event(timestamp, reason))
        self._closed[key] = None
        while len(self._closed) > REMEMBERED_CLOSED:
            self._closed.popitem(last=False)
        return events
