"""Hypothesis against every decoder and reader: arbitrary bytes give a result or the module's own
error, never another exception; the aggregator never crashes on what the decoders let through."""

from __future__ import annotations

import contextlib
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.ble import btsnoop
from interceptor.ble.aggregate import Aggregator
from interceptor.ble.decode import decode_frame, decode_service_data
from interceptor.ble.errors import DecodeError
from interceptor.ble.frames import Frame, FrameError, frame_from_json
from interceptor.ble.hci import HciError, HciReader
from interceptor.ble.mqtt import frame_from_mqtt
from interceptor.ble.routes import parse_batch
from tests.ble.btsnoop_writer import btsnoop as write_btsnoop
from tests.ble.btsnoop_writer import extended_reports, legacy_report
from tests.ble.vectors import VECTORS

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEY = bytes.fromhex("0728974d657a4b60964c1b1677f35f7c")
MAC = "8C:D0:B2:F6:BE:EF"
VALID = [bytes.fromhex(vector["data"]) for vector in VECTORS["service_data"]]


def mutated(base: list[bytes]) -> st.SearchStrategy[bytes]:
    """Real frames with bytes flipped, cut or appended: closer to the parsers' edges than noise."""
    return st.tuples(st.sampled_from(base), st.lists(st.tuples(st.integers(0, 40), st.integers(0, 255)), max_size=4),
                     st.integers(0, 40), st.binary(max_size=6)).map(
        lambda parts: _mutate(*parts))


def _mutate(data: bytes, flips: list[tuple[int, int]], cut: int, tail: bytes) -> bytes:
    out = bytearray(data)
    for position, value in flips:
        if out:
            out[position % len(out)] = value
    return bytes(out[: max(0, len(out) - cut % 4)]) + tail


@FAST
@given(uuid=st.sampled_from(["181d", "181b", "fe95"]), data=st.one_of(st.binary(max_size=40), mutated(VALID)),
       key=st.sampled_from([None, KEY, bytes(16)]))
def test_service_data_decoders(uuid: str, data: bytes, key: bytes | None) -> None:
    with contextlib.suppress(DecodeError):
        decode_service_data(uuid, data, MAC, key)


@FAST
@given(frames=st.lists(st.tuples(st.sampled_from(["181d", "181b", "fe95"]), mutated(VALID), st.floats(0, 100)),
                       max_size=30))
def test_aggregator_takes_whatever_decodes(frames: list[tuple[str, bytes, float]]) -> None:
    aggregator = Aggregator()
    clock = 1744250600.0
    for uuid, data, step in frames:
        clock += step
        frame = Frame(time=clock, mac=MAC, service_data={uuid: data})
        decoded = decode_frame(frame, lambda _mac: KEY)
        assert decoded is not None
        for reading in aggregator.feed(frame, decoded.samples, clock):
            assert reading.values["weight_kg"] > 0
    aggregator.flush(clock + 100)
    aggregator.flush_all()


SAMPLE = Frame(time=1.5, mac=MAC, rssi=-60, service_data={"fe95": VALID[8]}, name="Xiaomi Scale S400 BEEF")
EVENTS = [legacy_report(SAMPLE), *extended_reports(SAMPLE, 9)]


@FAST
@given(event=st.one_of(st.binary(max_size=80), st.binary(max_size=6).map(lambda tail: b"\x3e" + tail),
                       mutated(EVENTS)))
def test_hci_reader(event: bytes) -> None:
    with contextlib.suppress(HciError):
        HciReader().frames(event, 0.0)


CAPTURE = write_btsnoop([(1.0, event) for event in EVENTS])


@FAST
@given(data=st.one_of(st.binary(max_size=200), mutated([CAPTURE, bytes.fromhex(VECTORS["btsnoop"][0]["file"])])))
def test_btsnoop_reader(data: bytes) -> None:
    with contextlib.suppress(btsnoop.BtsnoopError):
        list(btsnoop.frames(io.BytesIO(data)))


JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children,
                                                                                       max_size=5), max_leaves=12)
FIELDS = st.fixed_dictionaries({}, optional={
    "time": st.sampled_from(["2025-04-10T02:03:25Z", "2025-04-10T02:03:25", "x"]) | JSON,
    "mac": st.sampled_from([MAC, "nope"]) | JSON, "address_type": st.sampled_from(["public", "moon"]) | JSON,
    "rssi": st.integers(-300, 300) | JSON, "service_data": st.dictionaries(
        st.sampled_from(["fe95", "0x181D", "zz", "0000fe95-0000-1000-8000-00805f9b34fb"]),
        st.sampled_from(["00", "0x0a", "z"]) | JSON, max_size=2) | JSON,
    "manufacturer_data": st.dictionaries(st.sampled_from(["0157", "x", "12345"]), st.sampled_from(["00"]) | JSON,
                                         max_size=2) | JSON,
    "name": JSON})


@FAST
@given(item=FIELDS | JSON)
def test_frame_json(item: object) -> None:
    try:
        frame_from_json(item)
        parse_batch(json.dumps({"frames": [item]}).encode())
    except FrameError:
        pass


GATEWAY = st.fixed_dictionaries({}, optional={
    "name": st.text(max_size=70) | JSON, "version": st.text(max_size=40) | JSON,
    "token": JSON}) | JSON


@FAST
@given(gateway=GATEWAY, item=FIELDS)
def test_batch_gateway(gateway: object, item: object) -> None:
    """Whatever `gateway` holds: a batch whose gateway has a printable name of 1 to 64 characters,
    or the bad field named (HTTP 422), never another exception."""
    try:
        batch = parse_batch(json.dumps({"gateway": gateway, "frames": [item]}).encode())
    except FrameError as error:
        assert "gateway" in str(error) or "frames[0]" in str(error)
        return
    if batch.gateway is not None:
        assert 0 < len(batch.gateway.name) <= 64 and batch.gateway.name.isprintable()


@FAST
@given(payload=st.one_of(st.binary(max_size=60), FIELDS.map(lambda fields: json.dumps(
    {"id": fields.get("mac", MAC), "servicedata": fields.get("name", "00"),
     "servicedatauuid": fields.get("address_type"), "manufacturerdata": fields.get("time"),
     "rssi": fields.get("rssi"), "mac_type": fields.get("rssi")}, default=str).encode())))
def test_mqtt_payloads(payload: bytes) -> None:
    with contextlib.suppress(FrameError):
        frame_from_mqtt(payload, 0.0)


@FAST
@given(moment=st.datetimes(timezones=st.timezones()))
def test_any_accepted_time_round_trips(moment: object) -> None:
    """What the endpoint accepts, the frame log can write back (no year-0 surprises)."""
    text = moment.isoformat()  # type: ignore[attr-defined]
    try:
        frame = frame_from_json({"time": text, "mac": MAC})
    except FrameError:
        return
    assert frame_from_json(frame.to_json()).time == frame.time


@FAST
@given(depth=st.integers(0, 3000), opening=st.sampled_from(["[", '{"a":', '{"frames":[']), digits=st.integers(1, 6000))
def test_deep_or_huge_documents_are_refused_with_a_frame_error(depth: int, opening: str, digits: int) -> None:
    """Nesting past the limit and integers no float holds: FrameError (HTTP 422) or None, never more."""
    for body in (opening.encode() * depth, b'{"frames": [{"rssi": ' + b"9" * digits + b"}]}",
                 b'{"id": "8C:D0:B2:F6:BE:EF", "rssi": ' + b"9" * digits + b"}"):
        with contextlib.suppress(FrameError):
            parse_batch(body)
        with contextlib.suppress(FrameError):
            frame_from_mqtt(body, 0.0)
