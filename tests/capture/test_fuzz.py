"""Hypothesis: no bytes make the reader fail other than with CaptureError, and the reassembler returns
a stream exactly once whatever the order, duplication and overlap of its segments."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.capture.conversations import read_conversations
from interceptor.capture.files import CaptureError
from interceptor.capture.http import MessageParser
from interceptor.capture.tcp import Data, Gap, Reassembler
from tests.capture.helpers import CAPTURES
from tests.capture.test_reassembly import REQUEST, segment, syn

SEEDS = [path.read_bytes() for path in sorted(CAPTURES.iterdir()) if path.suffix in (".pcap", ".pcapng")]


def read_all(data: bytes) -> None:
    try:
        for _ in read_conversations(io.BytesIO(data), "fuzz.pcap"):
            pass
    except CaptureError as error:
        assert error.name == "fuzz.pcap" and 0 <= error.offset <= len(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_are_read_or_refused_with_capture_error(data: bytes) -> None:
    read_all(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=12),
       st.integers(0, 1 << 16))
def test_mutated_captures_are_read_or_refused_with_capture_error(seed: bytes, flips: list[tuple[int, int]],
                                                                  cut: int) -> None:
    data = bytearray(seed[:max(cut, 28)] if cut < len(seed) else seed)
    for position, value in flips:
        data[position % len(data)] = value
    read_all(bytes(data))


@st.composite
def shuffled_segments(draw: st.DrawFn) -> tuple[bytes, list[tuple[int, int]]]:
    """A stream, and (start, end) pieces that cover it, in any order, some repeated or overlapping."""
    data = draw(st.binary(min_size=1, max_size=400))
    cuts = sorted(set(draw(st.lists(st.integers(1, len(data) - 1), max_size=20)) if len(data) > 1 else []))
    bounds = [0, *cuts, len(data)]
    pieces = list(itertools.pairwise(bounds))
    extra = draw(st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(1, 50)), max_size=8))
    pieces += [(start, min(len(data), start + size)) for start, size in extra]
    return data, draw(st.permutations(pieces))


@settings(max_examples=300, deadline=None)
@given(shuffled_segments())
def test_any_order_duplication_and_overlap_reassemble_to_the_original_stream(
        case: tuple[bytes, list[tuple[int, int]]]) -> None:
    data, pieces = case
    reassembler = Reassembler()
    events = reassembler.feed(syn())
    for start, end in pieces:
        events += reassembler.feed(segment(start, data[start:end]))
    events += reassembler.finish()
    assert not [event for event in events if isinstance(event, Gap)]
    delivered = [event for event in events if isinstance(event, Data)]
    assert b"".join(event.data for event in delivered) == data
    assert [event.offset for event in delivered] == sorted(event.offset for event in delivered)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, len(REQUEST) * 3 - 1), max_size=10, unique=True))
def test_requests_parse_the_same_however_the_stream_is_split(cuts: list[int]) -> None:
    stream = REQUEST * 3
    bounds = [0, *sorted(cuts), len(stream)]
    parser = MessageParser("request")
    messages = [message for start, end in itertools.pairwise(bounds)
                for message in parser.feed(stream[start:end], float(start))]
    assert [message.raw for message in messages] == [REQUEST] * 3 and parser.notes == []


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["request", "response"]))
def test_the_http_parser_takes_any_bytes_without_failing(data: bytes, kind: str) -> None:
    parser = MessageParser("request" if kind == "request" else "response", seek=True)
    parser.feed(data, 0.0)
    parser.gap(10)
    parser.feed(data[::-1], 1.0)
    parser.eof()


@pytest.mark.parametrize("head", [b"HTTP/1.1 200 OK\r\nContent-Length: \xb2134\r\n\r\n",
                                  b"HTTP/1.1 \xb200 OK\r\nContent-Length: 0\r\n\r\n"])
def test_a_superscript_digit_in_a_status_or_length_is_not_a_number(head: bytes) -> None:
    """Found by the mutation test above: a head is Latin-1, where "\u00b2" is a digit to `str.isdigit`."""
    parser = MessageParser("response")
    messages = parser.feed(head + b"body", 0.0) + parser.eof()  # no ValueError out of int()
    assert not any(message.complete for message in messages)
