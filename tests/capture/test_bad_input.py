"""Broken captures: a clear error naming the file and the byte offset, the good part still used, no hang."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

import pytest

from interceptor.capture.conversations import read_conversations
from interceptor.capture.files import CaptureError, read_frames
from interceptor.capture.synth import TcpSynthesiser, write_capture
from tests.capture.helpers import CAPTURES, HOUSEHOLD
from tests.conftest import run_cli

WBS01 = CAPTURES / "wbs01-weigh-in.pcapng"
WS50_PCAP = CAPTURES / "ws50-weigh-in-and-environment.pcap"
PCAP_HEADER = 24
PCAP_RECORD = 16


def frames_then_error(data: bytes) -> tuple[int, CaptureError]:
    count = 0
    with pytest.raises(CaptureError) as caught:
        for _ in read_frames(io.BytesIO(data), "broken.pcap"):
            count += 1
    return count, caught.value


def test_an_empty_file_and_a_wrong_magic_are_named_at_offset_0() -> None:
    assert frames_then_error(b"")[1].args[0] == (
        "broken.pcap: truncated file header: needs 4 bytes, the file has 0 left at byte offset 0")
    _, error = frames_then_error(b"GIF89a" + bytes(40))
    assert str(error) == "broken.pcap: not a pcap or pcapng file (magic 0x47494638) at byte offset 0"


def test_a_truncated_last_packet_is_reported_after_the_complete_ones() -> None:
    data = WS50_PCAP.read_bytes()
    frames = list(read_frames(io.BytesIO(data)))
    last = frames[-1]
    count, error = frames_then_error(data[:-10])
    assert count == len(frames) - 1
    assert error.offset == last.offset + PCAP_RECORD and "truncated packet data" in error.problem


def test_an_absurd_packet_length_is_refused_before_reading_it() -> None:
    data = bytearray(WS50_PCAP.read_bytes())
    struct.pack_into("<I", data, PCAP_HEADER + 8, 0x7FFFFFF0)  # caplen of the first record
    count, error = frames_then_error(bytes(data))
    assert count == 0 and error.offset == PCAP_HEADER
    assert "claims 2147483632 bytes" in error.problem


@pytest.mark.parametrize("length", [0, 4, 13, 0xFFFFFFFC])
def test_impossible_pcapng_block_lengths_are_refused(length: int) -> None:
    data = bytearray(WBS01.read_bytes())
    frames = list(read_frames(io.BytesIO(bytes(data))))
    target = frames[2].offset
    struct.pack_into("<I", data, target + 4, length)
    count, error = frames_then_error(bytes(data))
    assert count == 2 and error.offset == target and f"impossible length {length}" in error.problem


def test_a_pcapng_block_whose_two_lengths_differ_or_whose_interface_is_unknown() -> None:
    data = bytearray(WBS01.read_bytes())
    first = next(iter(read_frames(io.BytesIO(bytes(data)))))
    struct.pack_into("<I", data, first.offset + 8, 7)  # interface id of the first packet
    _, error = frames_then_error(bytes(data))
    assert error.offset == first.offset and "names interface 7" in error.problem
    block_length = struct.unpack_from("<I", data, first.offset + 4)[0]
    struct.pack_into("<I", data, first.offset + block_length - 4, block_length + 4)
    _, error = frames_then_error(bytes(data))
    assert "two length fields differ" in error.problem


def test_garbage_in_tcp_payloads_becomes_notes_not_exchanges() -> None:
    synth = TcpSynthesiser(("10.0.0.2", 40000), ("10.0.0.1", 80))
    frames = synth.handshake(1.0) + synth.send(synth.client, bytes(range(256)) * 20, 1.1)
    frames += synth.send(synth.server, b"\x00\xff" * 300, 1.2) + synth.close(2.0)
    output = io.BytesIO()
    write_capture(output, synth.linktype, frames)
    output.seek(0)
    [conversation] = list(read_conversations(output, "garbage.pcapng"))
    assert conversation.exchanges == ()
    assert any("not an HTTP request" in note or "malformed request" in note for note in conversation.notes)


def test_replay_of_a_truncated_file_exits_1_naming_file_and_offset_and_still_replays_what_it_read(
        tmp_path: Path) -> None:
    broken = tmp_path / "cut.pcapng"
    data = WBS01.read_bytes()
    broken.write_bytes(data[:len(data) - 30])
    result = run_cli("replay", "--config", str(HOUSEHOLD), "--format", "json", str(broken))

    assert result.returncode == 1
    assert f"interceptor: {broken}: truncated pcapng block" in result.stderr and "at byte offset" in result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines[-1]["summary"]["errors"] and lines[-1]["summary"]["measurements"] == 1
