"""The sans-I/O protocol against the captured samples, and its refusals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from interceptor.masking import mask_form
from interceptor.withings import protocol
from interceptor.withings.protocol import ProtocolError
from tests.withings.samples import first_line, payload

NOW = datetime(2013, 12, 17, 12, 0, tzinfo=UTC)


def test_wbs01_store_sample_parses_to_the_weight_the_scale_sent() -> None:
    form = protocol.parse_form(first_line("2010-wbs01-measure-store-request.form"))
    store = protocol.parse_measure_store(form)
    assert store.sessionid == "546-4c818c8e-3b918091"
    assert store.mac == "00:24:e4:ff:fc:01"
    assert store.userid == 101010
    assert len(store.groups) == 1
    group = store.groups[0]
    assert group.meastime == 1283558512
    assert [(m.type, m.value) for m in group.measures] == [(1, pytest.approx(66.850))]


def test_session_new_sample_yields_device_identity_and_hides_the_hash() -> None:
    form = protocol.parse_form(first_line("2013-session-new-request-emulated.form"))
    opened = protocol.parse_session_new(form)
    assert (opened.mac, opened.manufacturing_id, opened.firmware, opened.battery_pct) == (
        "00:24:e4:06:59:dc", "262151", 200, 69)
    assert opened.extra == {"duration": "30", "zreboot": "1"}
    assert "hash" not in repr(opened)
    assert b"<32-hex-md5>" not in mask_form(first_line("2013-session-new-request-emulated.form"))


def test_ws50_v2_measure_sample_gives_temperature_and_co2() -> None:
    form = protocol.parse_form(first_line("2013-ws50-v2-measure-request-body.txt"))
    (group,) = protocol.parse_v2_measure(form)
    assert group.meastime == 1387053012
    assert group.values == {"temperature_c": pytest.approx(20.2), "co2_ppm": 655.0}


def test_ws50_measuregrps_with_several_groups_and_unknown_types() -> None:
    document = {"measuregrps": [
        {"meastime": 1397399196, "measures": [
            {"value": 84683, "type": 1, "unit": -3}, {"value": 559, "type": 16, "unit": 0},
            {"value": 111, "type": 11, "unit": 0}]},
        {"meastime": 1397400232, "measures": [{"value": 84622, "type": 1}, {"value": 42, "type": 99, "unit": 1}]},
    ]}
    form = {"action": "store", "sessionid": "1-2-3", "userid": "2507298", "measuregrps": json.dumps(document)}
    store = protocol.parse_measure_store(form)
    first, second = store.groups
    assert [(m.type, m.value) for m in first.measures] == [(1, pytest.approx(84.683)), (16, 559), (11, 111)]
    # A weight without `unit` is taken as the -3 the scale sends, and the assumption is reported.
    assert second.measures[0].value == pytest.approx(84.622) and second.measures[0].unit_assumed
    assert second.measures[1].value == 420
    assert store.warnings and "assumed -3" in store.warnings[0]
    assert first.userid == second.userid == 2507298


def _reference_reply() -> dict:
    text = payload("2013-ws50-session-new-response-scalews.json").replace(b"__UTC__", b"1387281600")
    return json.loads(text)


def _shape(value: object) -> object:
    """Keys and value types, recursively: what an embedded JSON parser depends on."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_shape(item) for item in value[:1]]
    return "number" if isinstance(value, int | float) else type(value).__name__


def test_session_reply_has_the_shape_of_the_real_ws50_reply() -> None:
    user = protocol.ScaleUser(2507298, "FED", 86.812, 2.0, 21.3, 0, 3, 1385155190)
    raw = protocol.session_new_reply(
        "4079-f5f75535-2f5ea8eb", [user], locale="fr_FR", gravity_m_s2=9.8113,
        now=datetime.fromtimestamp(1387281600, UTC),
        transition=protocol.clock_transition(ZoneInfo("Europe/Paris"), datetime.fromtimestamp(1387281600, UTC)),
    )
    assert _shape(json.loads(raw)) == _shape(_reference_reply())
    # The whole reply equals the real one, field for field, given the same household and clock.
    assert json.loads(raw) == _reference_reply()


def test_session_reply_never_offers_firmware_and_escapes_slashes() -> None:
    raw = protocol.session_new_reply(
        "1-a-b", [], locale="en_GB/x", gravity_m_s2=9.7918, now=NOW,
        transition=protocol.clock_transition(ZoneInfo("UTC"), NOW))
    assert b"blc" not in raw
    assert b"en_GB\\/x" in raw and b"en_GB/x" not in raw
    assert json.loads(raw)["body"]["ind"]["lg"] == "en_GB/x"


@pytest.mark.parametrize(("zone", "now", "expected"), [
    ("Europe/Paris", datetime(2013, 12, 17, tzinfo=UTC), (3600, 1396141200, 7200)),  # ScaleWS 2013 reply
    ("Europe/Berlin", datetime(2023, 7, 9, 16, 18, tzinfo=UTC), (7200, 1698541200, 3600)),  # openScale #786
    ("America/New_York", datetime(2013, 3, 20, 3, 26, tzinfo=UTC), (-14400, 1383458400, -18000)),
    ("Asia/Tokyo", datetime(2024, 1, 1, tzinfo=UTC), (32400, 0, 0)),
])
def test_clock_transition_matches_the_captured_ctp(zone: str, now: datetime, expected: tuple) -> None:
    transition = protocol.clock_transition(ZoneInfo(zone), now)
    assert (transition.offset, transition.next_change, transition.next_offset) == expected


def test_once_and_session_ids_have_the_captured_shapes() -> None:
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{8}", protocol.new_once())
    assert re.fullmatch(r"\d{4}-[0-9a-f]{8}-[0-9a-f]{8}", protocol.new_session_id())
    # The sample files store the HTTP lines with LF endings; the body after the blank line is exact.
    reply = payload("2013-scalews-once-response.http").replace(b"\r\n", b"\n").split(b"\n\n", 1)[1]
    assert protocol.status_reply(body={"once": "00d0177b-1360777c"}) == reply.strip()


def _store(measures: list, meastime: int = 1387053012) -> dict[str, str]:
    return {"action": "store", "sessionid": "x", "meastime": str(meastime),
            "measures": json.dumps({"measures": measures})}


@pytest.mark.parametrize(("form", "reason"), [
    (_store([{"value": "70", "type": 1, "unit": 0}]), "not a number"),
    (_store([{"value": 7e300, "type": 1, "unit": 300}]), "unit 300 is outside -12..12"),
    (_store([{"value": 7e300, "type": 1, "unit": 12}]), "7e+300 × 10^12 is too large to be a measurement"),
    (_store([{"value": 10**400, "type": 1, "unit": -3}]), "value is too large to be a measurement"),
    (_store([{"value": 70000, "type": 1e300, "unit": -3}]), "type an integer of 301 digits is outside 0..32767"),
    (_store([{"value": 70000, "type": -1, "unit": -3}]), "type -1 is outside 0..32767"),
    (_store([{"value": 70000, "type": 1.5, "unit": -3}]), "type is not an integer: 1.5"),
    (_store([{"value": 70000, "type": 1, "unit": -3}], meastime=2**32), "meastime 4294967296 is outside"),
    ({"action": "store", "meastime": "9" * 5000, "measures": "[]"}, "meastime is not an integer: '9999"),
    ({"action": "store", "meastime": "1_0", "measures": "[]"}, "meastime is not an integer: '1_0'"),
    ({"action": "store", "userid": "-" + "9" * 30, "measuregrps": "[]"}, "userid is not an integer"),
    ({"action": "store", "userid": "4294967296", "measuregrps": "[]"}, "userid 4294967296 is outside"),
    ({"action": "store", "meastime": "1387053012", "measures": '[{"value": 1' + "0" * 5000 + ', "type": 1}]'},
     "an integer has more than 4300 digits"),
    ({"action": "store", "meastime": "1387053012", "measures": '{"measures": [{"value": NaN, "type": 1}]}'},
     "value is not finite"),
    ({"action": "store", "meastime": "1387053012", "measures": '{"measures": [{"value": -Infinity, "type": 1}]}'},
     "value is not finite"),
    ({"action": "store", "meastime": "1387053012", "measures": "[" * 100_000}, "nested deeper than 32 levels"),
    ({"action": "store", "measuregrps": '[{"meastime": 1e300, "measures": []}]'}, "meastime an integer of 301 digits"),
    (_store([]), "non-empty list"),
    ({"action": "store", "meastime": "1387053012", "measures": "{not json"}, "not JSON"),
    ({"action": "store", "measures": "{}"}, "missing field 'meastime'"),
    ({"action": "store"}, "neither 'measures' nor 'measuregrps'"),
    ({"action": "store", "measuregrps": "[]"}, "holds no groups"),
    ({"action": "store", "measuregrps": "[1]"}, "is not an object"),
    ({"action": "store", "macaddress": "nope", "measuregrps": "[]"}, "not a MAC"),
])
def test_bad_measure_requests_are_refused_with_a_reason(form: dict[str, str], reason: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(reason)) as refused:
        protocol.parse_measure_store(form)
    assert refused.value.status != protocol.STATUS_OK


@pytest.mark.parametrize(("body", "reason"), [
    (b"\xff\xfe", "not UTF-8"),
    (b"&".join(b"k%d=v" % i for i in range(100)), "malformed form"),
    (b"x" * (protocol.MAX_BODY_BYTES + 1), "exceeds"),
])
def test_bad_forms_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        protocol.parse_form(body)


def test_session_new_needs_a_mac_and_a_sane_battery() -> None:
    with pytest.raises(ProtocolError, match="missing field 'auth'"):
        protocol.parse_session_new({"action": "new"})
    with pytest.raises(ProtocolError, match="batterylvl 1337"):
        protocol.parse_session_new({"action": "new", "auth": "00:24:e4:06:59:dc", "batterylvl": "1337"})
