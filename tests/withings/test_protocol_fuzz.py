"""Hypothesis: no byte string, form or JSON document makes a parser fail other than with ProtocolError."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.withings import protocol
from interceptor.withings.protocol import ProtocolError

NOW = datetime(2014, 4, 14, tzinfo=UTC)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["value", "type", "unit", "meastime", "measures", "measuregrps", "data", "mantissa",
                         "exponent", "userid"]) | st.text(max_size=4), children, max_size=5),
    max_leaves=20,
)
measure = st.fixed_dictionaries({"type": st.integers(-5, 200), "value": st.integers(-10**9, 10**9)},
                                 optional={"unit": st.integers(-20, 20)})
group = st.fixed_dictionaries({"meastime": st.integers(0, 2**33), "measures": st.lists(measure, max_size=5)})


def _all_parsers(form: dict[str, str]) -> None:
    for parse in (lambda: protocol.parse_measure_store(form, NOW), lambda: protocol.parse_v2_measure(form, NOW),
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
    _all_parsers({"action": "store", field: json.dumps(document), "meastime": meastime, "macaddress": mac,
                  "auth": mac, "batterylvl": meastime})


@settings(max_examples=300, deadline=None)
@given(st.lists(group, min_size=1, max_size=4))
def test_structurally_valid_groups_parse_or_are_refused_with_a_reason(groups: list[dict]) -> None:
    form = {"action": "store", "measuregrps": json.dumps({"measuregrps": groups})}
    try:
        store = protocol.parse_measure_store(form, NOW)
    except ProtocolError as error:
        assert error.detail
        return
    for parsed in store.groups:
        for item in parsed.measures:
            if item.type == 1:
                assert 0 < item.value <= protocol.MAX_WEIGHT_KG


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
