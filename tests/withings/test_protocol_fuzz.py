"""Hypothesis: no byte string, form or JSON document makes a parser fail other than with ProtocolError,
and whatever parses is finite and within the field's integer range (huge integers, NaN, infinities,
overflow after unit scaling and deep nesting included)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.withings import protocol
from interceptor.withings.protocol import ProtocolError

# Integers far beyond a float (10**400) and floats at the edges, as a hostile client would send them.
numbers = (st.integers() | st.integers(min_value=-(10**400), max_value=10**400) | st.floats()
           | st.sampled_from([1e308, -1e308, 5e-324, 2**53 + 1, 2**64]))
json_values = st.recursive(
    st.none() | st.booleans() | numbers | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["value", "type", "unit", "meastime", "measures", "measuregrps", "data", "mantissa",
                         "exponent", "userid"]) | st.text(max_size=4), children, max_size=5),
    max_leaves=20,
)
measure = st.fixed_dictionaries({"type": numbers, "value": numbers}, optional={"unit": st.integers(-20, 20) | numbers})
group = st.fixed_dictionaries({"meastime": st.integers(-1, 2**33) | numbers, "measures": st.lists(measure, max_size=5)},
                              optional={"userid": numbers})
v2_measure = st.fixed_dictionaries({"type": numbers, "data": st.fixed_dictionaries(
    {"mantissa": numbers}, optional={"exponent": st.integers(-20, 20) | numbers, "unit": numbers})})
v2_group = st.fixed_dictionaries({"meastime": st.integers(0, 2**33) | numbers,
                                  "measures": st.lists(v2_measure, max_size=4)})


def _dumps(document: object) -> str:
    return json.dumps(document)  # NaN and Infinity as Python writes them: the parser must refuse them


def _all_parsers(form: dict[str, str]) -> None:
    for parse in (lambda: protocol.parse_measure_store(form), lambda: protocol.parse_v2_measure(form),
                  lambda: protocol.parse_session_new(form)):
        try:
            parse()
        except ProtocolError as error:
            assert error.status != protocol.STATUS_OK and error.detail


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes(body: bytes) -> None:
    try:
        form = protocol.parse_form(body)
    except ProtocolError:
        return
    _all_parsers(form)


@settings(max_examples=300, deadline=None)
@given(json_values, st.sampled_from(["measures", "measuregrps"]), st.text(max_size=12), st.text(max_size=12))
def test_arbitrary_json_documents(document: object, field: str, meastime: str, mac: str) -> None:
    _all_parsers({"action": "store", field: _dumps(document), "meastime": meastime, "macaddress": mac,
                  "auth": mac, "batterylvl": meastime, "userid": meastime, "currentfw": meastime})


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 5000), st.sampled_from(["[", "{\"a\":", "[{\"measures\":"]))
def test_any_nesting_is_refused_or_parsed(depth: int, opening: str) -> None:
    _all_parsers({"action": "store", "meastime": "1387053012", "measures": opening * depth,
                  "measuregrps": opening * depth})


@settings(max_examples=300, deadline=None)
@given(st.lists(group, min_size=1, max_size=4), st.integers() | st.text(max_size=25))
def test_structurally_valid_groups_parse_to_finite_bounded_values(groups: list[dict], userid: object) -> None:
    form = {"action": "store", "measuregrps": _dumps({"measuregrps": groups}), "userid": str(userid)}
    try:
        store = protocol.parse_measure_store(form)
    except ProtocolError as error:
        assert error.detail
        return
    low, high = protocol.INT32_RANGE
    assert store.userid is None or low <= store.userid <= high
    for parsed in store.groups:
        assert 0 <= parsed.meastime < 2**32
        assert parsed.userid is None or low <= parsed.userid <= high
        for item in parsed.measures:
            assert 0 <= item.type <= protocol.MEASURE_TYPE_RANGE[1]
            assert math.isfinite(item.value)


@settings(max_examples=300, deadline=None)
@given(st.lists(v2_group, min_size=1, max_size=3))
def test_environment_groups_parse_to_finite_bounded_values(groups: list[dict]) -> None:
    try:
        parsed = protocol.parse_v2_measure({"measuregrps": _dumps(groups)})
    except ProtocolError as error:
        assert error.detail
        return
    for group in parsed:
        assert 0 <= group.meastime < 2**32
        assert all(math.isfinite(value) for value in [*group.values.values(), *group.raw.values()])
        assert all(len(name) <= len("withings_type_32767") for name in group.raw)


# Escapes of single bytes (ASCII, UTF-8 lead and continuation bytes, invalid ones), broken escapes,
# backslashes, plus signs and text around them.
_escaped_text = st.lists(
    st.integers(0, 255).map(lambda byte: f"%{byte:02X}") | st.integers(0, 255).map(lambda byte: f"%{byte:02x}")
    | st.sampled_from(["%", "%4", "%zz", "%%41", "\\", "\\x41", "\\%41", "+", "=", "é", "€"])
    | st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="&"), max_size=4),
    max_size=12,
).map("".join)


@settings(max_examples=1000, deadline=None)
@given(_escaped_text)
def test_a_value_is_unescaped_exactly_as_the_standard_library_does(text: str) -> None:
    from urllib.parse import unquote_plus

    assert protocol.parse_form(f"key={text}".encode())["key"] == unquote_plus(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(st.text("ab=%+2Fz&é", max_size=6), st.text("ab=%+2Fz&é", max_size=6)), max_size=8)
       | st.text("ab=%+2F&é;", max_size=40).map(lambda text: [(text, None)]))
def test_form_parsing_matches_the_standard_library(fields: list[tuple[str, str | None]]) -> None:
    """The fast form parser decodes exactly as `parse_qsl(keep_blank_values=True)`, first key winning."""
    from urllib.parse import parse_qsl

    text = "&".join(key if value is None else f"{key}={value}" for key, value in fields)
    expected: dict[str, str] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        expected.setdefault(key, value)
    assert protocol.parse_form(text.encode()) == expected


_scale_users = st.lists(st.builds(
    protocol.ScaleUser, id=st.integers(0, 2**31), short_name=st.text("AB/é", max_size=4),
    weight_kg=st.floats(0, 400), height_m=st.floats(0.5, 2.5), age_years=st.floats(0, 130), sex=st.integers(0, 1),
    fm=st.integers(0, 5), created=st.integers(0, 2**32)), max_size=3)


@settings(max_examples=300, deadline=None)
@given(st.text("0123456789abcdef-/\\\"é", max_size=24) | st.text(max_size=24), _scale_users,
       st.text("abcdefgh_/é", max_size=8) | st.text(max_size=8), st.floats(9.7, 9.9),
       st.datetimes(timezones=st.just(UTC), min_value=datetime(2008, 1, 1), max_value=datetime(2100, 1, 1)),
       st.builds(protocol.ClockTransition, st.integers(-50_000, 50_000), st.integers(0, 2**32),
                 st.integers(-50_000, 50_000)),
       st.none() | st.dictionaries(st.sampled_from(["f", "stp", "xyz", "a/b"]), st.integers(), max_size=3))
def test_a_session_reply_is_its_document_encoded_like_every_other_reply(
        session_id: str, users: list[protocol.ScaleUser], locale: str, gravity: float, now: datetime,
        transition: protocol.ClockTransition, ind_extra: dict[str, int] | None) -> None:
    """Written out in parts (the household's part kept from reply to reply), a session reply has the
    very bytes of `encode_reply` of its whole document."""
    ind = {"lg": locale, "imt": 1, "stp": 1, "f": 0, "g": round(gravity * 10000), **(ind_extra or {})}
    document = {"status": 0, "body": {"sessionid": session_id, "sp": {"users": [user.as_json() for user in users]},
                                      "ind": ind, "syp": {"utc": int(now.timestamp())}, "ctp": transition.as_json()}}
    for _ in range(2):  # the second time from the kept text
        assert protocol.session_new_reply(session_id, users, locale=locale, gravity_m_s2=gravity, now=now,
                                          transition=transition, ind_extra=ind_extra) == protocol.encode_reply(document)
