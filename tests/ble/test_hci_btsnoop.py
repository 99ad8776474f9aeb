"""HCI advertising reports and btsnoop files: the reference's bytes, then round trips."""

from __future__ import annotations

import io
from typing import Any

import pytest

from interceptor.ble import btsnoop
from interceptor.ble.decode import decode_service_data, describe
from interceptor.ble.frames import Frame
from interceptor.ble.hci import HciError, HciReader
from tests.ble.btsnoop_writer import btsnoop as write_btsnoop
from tests.ble.btsnoop_writer import extended_reports, legacy_report
from tests.ble.vectors import VECTORS


def _as_expected(frame: Frame) -> dict[str, Any]:
    return {
        "mac": frame.mac, "address_type": frame.address_type, "rssi": frame.rssi,
        "service_data": {uuid: data.hex() for uuid, data in frame.service_data.items()},
        "manufacturer_data": {f"{company:04x}": data.hex() for company, data in frame.manufacturer_data.items()},
    }


@pytest.mark.parametrize("vector", VECTORS["hci"], ids=lambda vector: vector["id"])
def test_hci_vector(vector: dict[str, Any]) -> None:
    event = bytes.fromhex(vector["event"])
    assert event[0] == 0x04  # the H4 byte, as in a datalink-1002 record
    [frame] = HciReader().frames(event[1:], 0.0)
    actual = _as_expected(frame)
    for name, value in vector["expect"].items():
        assert actual[name] == value, name
    [sample] = decode_service_data(*next(iter(frame.service_data.items())), frame.mac)
    for name, value in vector["sample"].items():
        assert describe(sample)[name] == value


def test_btsnoop_vector() -> None:
    vector = VECTORS["btsnoop"][0]
    frames = list(btsnoop.frames(io.BytesIO(bytes.fromhex(vector["file"]))))
    assert len(frames) == len(vector["expect"])
    for frame, expected in zip(frames, vector["expect"], strict=True):
        assert frame.time == pytest.approx(expected["time"], abs=1e-6)
        assert frame.mac == expected["mac"]
        assert frame.rssi == expected["rssi"]
        assert {uuid: data.hex() for uuid, data in frame.service_data.items()} == expected["service_data"]


def test_writer_reproduces_the_reference_btsnoop() -> None:
    """The test writer, fed the reference's HCI events, writes the reference's file byte for byte."""
    vector = bytes.fromhex(VECTORS["btsnoop"][0]["file"])
    [(t1, e1), (t2, e2)] = list(btsnoop.events(io.BytesIO(vector)))
    assert write_btsnoop([(t1, e1), (t2, e2)]) == vector


SAMPLE = Frame(time=1744250606.25, mac="8C:D0:B2:F6:BE:EF", address_type="random", rssi=-61,
               service_data={"fe95": bytes.fromhex("4859d53b0abc078ff2348c844138e930220000009e538599")},
               manufacturer_data={0x0157: b"\x01\x02"}, name="Xiaomi Scale S400 BEEF")


@pytest.mark.parametrize("datalink", [btsnoop.DATALINK_H1, btsnoop.DATALINK_H4, btsnoop.DATALINK_MONITOR])
def test_datalinks_round_trip(datalink: int) -> None:
    events = [(SAMPLE.time, legacy_report(SAMPLE)), *((SAMPLE.time + 1, e) for e in extended_reports(SAMPLE))]
    frames = list(btsnoop.frames(io.BytesIO(write_btsnoop(events, datalink))))
    assert [frame.time for frame in frames] == [SAMPLE.time, SAMPLE.time + 1]
    for frame in frames:
        assert (frame.mac, frame.address_type, frame.rssi, frame.service_data, frame.manufacturer_data, frame.name) == (
            SAMPLE.mac, SAMPLE.address_type, SAMPLE.rssi, SAMPLE.service_data, SAMPLE.manufacturer_data, SAMPLE.name)


def test_fragmented_extended_report_is_joined() -> None:
    reader = HciReader()
    events = extended_reports(SAMPLE, fragment=7)
    assert len(events) > 3
    found = [frame for event in events for frame in reader.frames(event, 1.0)]
    assert len(found) == 1
    assert found[0].service_data == SAMPLE.service_data and found[0].name == SAMPLE.name


def test_truncated_extended_report_is_dropped_and_counted() -> None:
    reader = HciReader()
    first, *_ = extended_reports(SAMPLE, fragment=7)
    truncated = bytearray(extended_reports(SAMPLE)[0])
    truncated[4] |= 0x40  # data status 2: truncated
    assert reader.frames(first, 1.0) == []
    assert reader.frames(bytes(truncated), 1.0) == []
    assert reader.truncated == 1


def test_bad_event_is_an_hci_error() -> None:
    event = bytearray(legacy_report(SAMPLE))
    event[12] = 200  # data length beyond the event
    with pytest.raises(HciError, match="the event ends first"):
        HciReader().frames(bytes(event), 0.0)


def test_corrupt_event_in_a_capture_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    bad = bytearray(legacy_report(SAMPLE))
    bad[12] = 200
    capture = write_btsnoop([(1.0, bytes(bad)), (2.0, legacy_report(SAMPLE))])
    assert [frame.time for frame in btsnoop.frames(io.BytesIO(capture))] == [2.0]
    assert bad.hex() in caplog.text


@pytest.mark.parametrize(("data", "message"), [
    (b"not a capture", "not a btsnoop file"),
    (btsnoop.MAGIC + bytes.fromhex("0000000100000bb9"), "datalink 3001"),
    (bytes.fromhex(VECTORS["btsnoop"][0]["file"])[:-5], "record 2: data cut short"),
])
def test_bad_files_say_why(data: bytes, message: str) -> None:
    with pytest.raises(btsnoop.BtsnoopError, match=message):
        list(btsnoop.frames(io.BytesIO(data)))
