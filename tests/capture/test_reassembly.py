"""TCP reassembly and HTTP parsing on hand-made segments: the untidy cases a router's capture has."""

from __future__ import annotations

import io

from dpkt import tcp

from interceptor.capture.conversations import read_conversations
from interceptor.capture.http import MessageParser
from interceptor.capture.link import Address, Segment
from interceptor.capture.synth import TcpSynthesiser, write_capture
from interceptor.capture.tcp import Closed, Data, Event, Gap, Opened, Reassembler

CLIENT: Address = ("192.168.1.20", 49152)
SERVER: Address = ("10.0.0.1", 80)
ISN = 1000
ACK_PSH = tcp.TH_ACK | tcp.TH_PUSH


def segment(offset: int, payload: bytes, *, source: Address = CLIENT, flags: int = ACK_PSH, isn: int = ISN,
            at: float = 1.0) -> Segment:
    """A segment carrying `payload` at stream offset `offset` (ISN + 1 is offset 0)."""
    destination = SERVER if source == CLIENT else CLIENT
    seq = isn if flags & tcp.TH_SYN else (isn + 1 + offset) % (1 << 32)
    return Segment(at, source, destination, seq, 0, flags, payload, len(payload))


def syn(isn: int = ISN) -> Segment:
    return segment(0, b"", flags=tcp.TH_SYN, isn=isn)


def stream(events: list[Event], sender: Address = CLIENT) -> bytes:
    return b"".join(event.data for event in events if isinstance(event, Data) and event.sender == sender)


def feed(reassembler: Reassembler, *segments: Segment) -> list[Event]:
    return [event for item in segments for event in reassembler.feed(item)]


def test_in_order_segments_are_delivered_at_once() -> None:
    events = feed(Reassembler(), syn(), segment(0, b"POST "), segment(5, b"/cgi-bin"))
    assert isinstance(events[0], Opened) and events[0].client == CLIENT
    assert stream(events) == b"POST /cgi-bin"


def test_out_of_order_segments_wait_for_the_hole_to_fill() -> None:
    reassembler = Reassembler()
    early = feed(reassembler, syn(), segment(5, b"/cgi-bin"))
    assert stream(early) == b""
    assert stream(feed(reassembler, segment(0, b"POST "))) == b"POST /cgi-bin"


def test_a_retransmission_is_delivered_once_and_counted() -> None:
    reassembler = Reassembler()
    events = feed(reassembler, syn(), segment(0, b"action="), segment(0, b"action="), segment(7, b"get"))
    events += reassembler.finish()
    assert stream(events) == b"action=get"
    closed = next(event for event in events if isinstance(event, Closed))
    assert closed.retransmitted_segments == 1 and closed.reason == "end of capture"


def test_overlapping_segments_deliver_each_byte_once() -> None:
    """Delivered bytes are never replaced ("XXX" loses); among waiting segments the lowest-starting wins."""
    reassembler = Reassembler()
    events = feed(reassembler, syn(), segment(0, b"abcdef"), segment(3, b"XXXghi"), segment(8, b"ij"),
                  segment(20, b"late"), segment(10, b"klmnopqrstAAAA"))
    events += reassembler.finish()
    assert stream(events) == b"abcdefghijklmnopqrstAAAA"
    assert not [event for event in events if isinstance(event, Gap)]


def test_without_a_handshake_the_first_byte_seen_is_the_start_and_the_client_is_unknown() -> None:
    reassembler = Reassembler()
    events = feed(reassembler, segment(700, b"tail of something"), segment(717, b" more"))
    opened = events[0]
    assert isinstance(opened, Opened) and opened.client is None and opened.first_sender == CLIENT
    assert stream(events) == b"tail of something more"


def test_sequence_numbers_wrap_around() -> None:
    isn = (1 << 32) - 4
    events = feed(Reassembler(), syn(isn), segment(0, b"abcdef", isn=isn), segment(6, b"ghij", isn=isn))
    assert stream(events) == b"abcdefghij"


def test_a_lost_segment_is_a_gap_and_what_follows_is_still_delivered() -> None:
    reassembler = Reassembler()
    events = feed(reassembler, syn(), segment(0, b"first"), segment(10, b"third")) + reassembler.finish()
    gaps = [event for event in events if isinstance(event, Gap)]
    assert [(gap.offset, gap.size) for gap in gaps] == [(5, 5)]
    assert stream(events) == b"firstthird"


def test_a_reset_closes_and_a_new_syn_on_the_same_ports_is_a_new_connection() -> None:
    reassembler = Reassembler()
    events = feed(reassembler, syn(), segment(0, b"one"), segment(3, b"", flags=tcp.TH_RST | tcp.TH_ACK),
                  segment(3, b"late copy"), syn(5000), segment(0, b"two", isn=5000))
    kinds = [type(event).__name__ for event in events]
    assert kinds == ["Opened", "Data", "Closed", "Opened", "Data"]
    assert [event.reason for event in events if isinstance(event, Closed)] == ["reset"]
    assert stream(events) == b"onetwo"


def test_waiting_data_is_bounded_by_declaring_the_hole_a_gap() -> None:
    reassembler = Reassembler()
    chunk = b"x" * 60_000
    events = feed(reassembler, syn(), *(segment(100 + index * len(chunk), chunk) for index in range(20)))
    gaps = [event for event in events if isinstance(event, Gap)]
    assert gaps and gaps[0].offset == 0 and gaps[0].size == 100
    assert len(stream(events)) >= 1 << 20


def test_idle_connections_are_closed() -> None:
    reassembler = Reassembler(idle_timeout=60)
    feed(reassembler, syn(), segment(0, b"hello"))
    other = Segment(500.0, ("192.168.1.21", 40000), SERVER, 1, 0, tcp.TH_SYN, b"", 0)
    events = reassembler.feed(other)
    assert [event.reason for event in events if isinstance(event, Closed)] == ["idle"]


# -- HTTP on top ------------------------------------------------------------------------------------

REQUEST = b"POST /cgi-bin/once HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\naction=get"
CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n4;x=1\r\n abc\r\n0\r\n\r\n"


def test_keep_alive_requests_in_one_segment_and_split_byte_by_byte_parse_the_same() -> None:
    whole = MessageParser("request").feed(REQUEST * 3, 1.0)
    parser = MessageParser("request")
    split = [message for byte in REQUEST * 3 for message in parser.feed(bytes([byte]), 1.0)]
    assert [message.raw for message in whole] == [message.raw for message in split] == [REQUEST] * 3
    assert all(message.body == b"action=get" and message.framing == "content-length" for message in split)


def test_a_chunked_reply_is_de_chunked_and_its_chunk_sizes_kept() -> None:
    [reply] = MessageParser("response").feed(CHUNKED, 2.0)
    assert reply.body == b"hello abc" and reply.framing == "chunked" and reply.chunk_sizes == (5, 4)
    assert reply.raw == CHUNKED and reply.status == 200


def test_lf_only_lines_a_reply_to_head_and_a_body_until_close() -> None:
    parser = MessageParser("response")
    parser.request_methods.extend(["HEAD", "GET"])
    messages = parser.feed(b"HTTP/1.1 200 OK\nContent-Length: 99\n\nHTTP/1.0 200 OK\n\nrest of", 1.0)
    assert [(message.framing, message.body) for message in messages] == [("none", b"")]
    [last] = parser.eof()
    assert last.framing == "close" and last.body == b"rest of"


def test_garbage_is_skipped_said_so_and_the_next_request_is_found() -> None:
    parser = MessageParser("request")
    messages = parser.feed(b"\x16\x03\x01\x02\x00garbage" + REQUEST, 1.0)
    assert [message.raw for message in messages] == [REQUEST]
    assert parser.notes == ["malformed request head at stream offset 0", "skipped 12 bytes before a request start line"]


def test_a_capture_starting_mid_stream_recovers_at_the_next_request() -> None:
    synth = TcpSynthesiser(CLIENT, SERVER)
    reply = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"status\":0}"[:-1]
    frames = synth.handshake(1.0)
    for index in range(3):
        frames += synth.send(synth.client, REQUEST, 2.0 + index, segment_size=20)
        frames += synth.send(synth.server, reply, 2.5 + index)
    frames += synth.close(9.0)
    output = io.BytesIO()
    write_capture(output, synth.linktype, frames[5:])  # no handshake, and the first request cut
    output.seek(0)
    [conversation] = list(read_conversations(output, "mid-stream.pcapng"))
    assert not conversation.handshake and conversation.client == CLIENT
    assert [exchange.request.raw for exchange in conversation.exchanges] == [REQUEST, REQUEST]
    assert all(exchange.response is not None for exchange in conversation.exchanges)
    assert any("skipped" in note for note in conversation.notes)
