"""Bounded nesting for JSON and TOML: the scan agrees with the parsed structure, the limit is exact,
and hypothesis shows the loaders raise nothing but ValueError (TooDeep among them) on any text."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from interceptor.nesting import (
    MAX_NESTING,
    TooDeep,
    json_nesting,
    loads_json,
    loads_toml,
    structure_nesting,
    toml_nesting,
)

EXAMPLE = Path(__file__).parent.parent / "interceptor.example.toml"


def nested_json(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize(("text", "levels"), [
    ("1", 0), ("[]", 1), ('{"a": [1]}', 2), ('"[[[["', 0), ('["\\"[", {"]": "{"}]', 2),
    ('{"frames": [{"service_data": {"fe95": "00"}}]}', 4),
])
def test_json_levels_ignore_brackets_inside_strings(text: str, levels: int) -> None:
    assert json_nesting(text) == levels == structure_nesting(json.loads(text))


def test_json_limit_is_exact() -> None:
    assert loads_json(nested_json(MAX_NESTING), "body") is not None
    with pytest.raises(TooDeep, match=f"body is nested deeper than {MAX_NESTING} levels"):
        loads_json(nested_json(MAX_NESTING + 1), "body")
    with pytest.raises(TooDeep):
        loads_json(b"[" * 200_000, "body")  # far past where json.loads raises RecursionError


def test_json_refuses_what_json_loads_would_choke_on_with_a_value_error() -> None:
    with pytest.raises(ValueError, match="an integer has more than 4300 digits"):
        loads_json("[1" + "0" * 5000 + "]", "body")
    with pytest.raises(ValueError):
        loads_json(b"\xff", "body")
    with pytest.raises(json.JSONDecodeError):
        loads_json('{"a": ', "body")


@pytest.mark.parametrize(("text", "levels"), [
    ("a = 1", 1), ("a.b.c = 1", 3), ("[a.b]\nc = 1", 3), ("x = [[1], [2]]", 3), ('"a.b" = 1', 1),
    ("s = '''[[[[\n]]'''", 1), ('s = """{{{{\n"""', 1), ("# [[[[[\na = 1", 1), ("x = 'a [[ b'", 1),
    ("t = { a = { b = 1 } }", 3),
])
def test_toml_levels_bound_the_parsed_structure(text: str, levels: int) -> None:
    assert toml_nesting(text) == levels
    assert structure_nesting(tomllib.loads(text)) <= levels


def test_the_shipped_example_is_far_from_the_limit() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert toml_nesting(text) <= 6 and loads_toml(text, "example") == tomllib.loads(text)


@pytest.mark.parametrize("text", [
    "x = " + "[" * 50_000,  # tomllib: RecursionError
    ".".join(["a"] * 50_000) + " = 1",  # tomllib: time and memory grow with the square of the key
    "[" + ".".join(["a"] * 40) + "]\nb = 1",
    "[" + ".".join(["a"] * 20) + "]\n" + ".".join(["b"] * 20) + " = 1",  # 41 levels over two lines
])
def test_toml_limit_covers_brackets_dotted_keys_and_headers(text: str) -> None:
    with pytest.raises(TooDeep, match=r"config\.toml is nested deeper than 32 levels"):
        loads_toml(text, "config.toml")


def test_toml_integers_too_long_are_a_value_error() -> None:
    with pytest.raises(ValueError, match="an integer has more than 4300 digits"):
        loads_toml("a = 1" + "0" * 5000, "config.toml")


json_documents = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(alphabet='[]{}"\\ab', max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(alphabet='[]{}"\\', max_size=3),
                                                                       children, max_size=3),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None)
@given(json_documents)
def test_json_scan_equals_the_parsed_depth(document: object) -> None:
    text = json.dumps(document)
    assert json_nesting(text) == structure_nesting(document)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet='[]{}"\'\\#.=,\n ab1', max_size=200) | st.integers(0, 3000).map(lambda n: "[" * n))
def test_loaders_raise_only_value_errors(text: str) -> None:
    for load in (loads_json, loads_toml):
        try:
            document = load(text, "text")
        except ValueError:
            continue
        assert structure_nesting(document) <= MAX_NESTING
