"""Claims from Home Assistant's select, and our own retained documents read back: whatever a
publisher sends, the parsers answer with a value or a bounded refusal, never another exception."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.homeassistant.commands import MAX_PAYLOAD_BYTES, Claim, ClaimError, parse_claim
from interceptor.homeassistant.states import MAX_DOCUMENT_BYTES, Held, Stamp, held_of

LABELS = {"Fred": "fed", "Franziska": "fra", "A guest (not in the household)": None}
PEOPLE = {"fed", "fra", None}
# No deadline: the machine is shared, and a slow example is not a wrong one.
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.binary(max_size=2 * MAX_PAYLOAD_BYTES))
def test_any_bytes_give_a_claim_or_a_bounded_refusal(payload: bytes) -> None:
    try:
        claim = parse_claim(payload, LABELS)
    except ClaimError as error:
        assert len(str(error)) < 400
    else:
        assert claim.person in PEOPLE


@FUZZ
@given(st.dictionaries(st.sampled_from(["measurement_id", "person", "other"]), json_values, max_size=3))
def test_any_json_object_gives_a_claim_or_a_refusal(document: dict) -> None:
    try:
        claim = parse_claim(json.dumps(document).encode(), LABELS)
    except ClaimError:
        return
    assert claim.person in PEOPLE
    assert claim.measurement_id is None or (isinstance(claim.measurement_id, int) and claim.measurement_id > 0)


@FUZZ
@given(st.sampled_from([*sorted(LABELS), "fed", "fra"]), st.none() | st.integers(1, 2**63 - 1))
def test_what_the_select_sends_is_understood(person: str, measurement_id: int | None) -> None:
    payload = json.dumps({"measurement_id": measurement_id, "person": person}).encode()
    assert parse_claim(payload, LABELS) == Claim(LABELS.get(person, person), measurement_id)
    assert parse_claim(f"  {person}\n".encode(), LABELS) == Claim(LABELS.get(person, person), None)


@pytest.mark.parametrize(("payload", "reason"), [
    (b"", "an empty claim"),
    (b"Zed", "'Zed' is not a person of the household (options: A guest (not in the household), Franziska, Fred)"),
    (b'{"person": "Fred", "measurement_id": true}', "measurement_id must be"),
    (b'{"person": "Fred", "measurement_id": -3}', "measurement_id must be"),
    (b'{"person": 3}', 'a claim must be {"measurement_id": N, "person": "NAME"}'),
    (b'{"person": "Fred"', "not valid JSON"),
    (b"\xff\xfe", "not UTF-8"),
    (b"F" * (MAX_PAYLOAD_BYTES + 1), f"at most {MAX_PAYLOAD_BYTES}"),
])
def test_refusals_say_what_is_wrong(payload: bytes, reason: str) -> None:
    with pytest.raises(ClaimError, match=None) as error:
        parse_claim(payload, LABELS)
    assert reason in str(error.value)


@FUZZ
@given(st.binary(max_size=512) | json_values.map(lambda value: json.dumps(value).encode()))
def test_read_back_takes_only_our_stamps(payload: bytes) -> None:
    held = held_of(payload)
    assert held is None or (isinstance(held.stamp.epoch, str) and held.stamp.seq >= 0)


@FUZZ
@given(st.text(max_size=16), st.integers(0, 2**62), st.integers(0, 2**62))
def test_a_held_document_covers_itself_older_ones_and_the_same_state(epoch: str, seq: int, other: int) -> None:
    held = held_of(json.dumps({"epoch": epoch, "seq": seq, "weight": 80.0}).encode())
    assert held == Held(Stamp(epoch, seq), {"weight": 80.0})
    assert held.covers(Held(Stamp(epoch, other), {"weight": 81.0})) == (other <= seq)
    # another journal's documents never hide ours, unless they say the same
    assert not held.covers(Held(Stamp(epoch + "x", other), {"weight": 81.0}))
    assert held.covers(Held(Stamp(epoch + "x", other), {"weight": 80.0}))
    assert held_of(b" " * (MAX_DOCUMENT_BYTES + 1)) is None
