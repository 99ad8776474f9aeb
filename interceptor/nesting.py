"""JSON and TOML documents with bounded nesting, refused before a recursive parser sees them.

`json` and `tomllib` recurse once per level: a body of 100,000 `[` makes them raise RecursionError,
which a handler turns into HTTP 500 or a traceback. A scan of the text counts the levels first, so
the parsers never go deeper than `MAX_NESTING`, and the refusal names the limit. In TOML, dotted keys
nest too (`a.b.c = 1` is three tables) and tomllib's cost grows with the square of a key's length,
so the scan counts their dots as levels as well. Sans-I/O: text in, values or `TooDeep` out.
"""

from __future__ import annotations

import json
import re
import sys
import tomllib
from typing import Any

# Every document the project reads is shallow: a BLE batch is 4 levels ({"frames": [{"service_data":
# {...}}]}), a Withings `measuregrps` at most 6, the shipped configuration 3. 32 is room to spare, and
# far below the ~1000 levels at which Python's parsers give up.
MAX_NESTING = 32

# A JSON string (escapes included, or an unterminated one to the end) or a bracket; nothing else counts.
_JSON_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\Z)|[\[\]{}]', re.DOTALL)
# TOML strings (multi-line first), comments, brackets, and what separates or nests keys.
_TOML_TOKENS = re.compile(
    r'"""(?:[^"\\]|\\.|"(?!""))*(?:"""|\Z)'
    r"|'''.*?(?:'''|\Z)"
    r'|"[^"\\\n]*(?:\\.[^"\\\n]*)*(?:"|(?=\n)|\Z)'
    r"|'[^'\n]*(?:'|(?=\n)|\Z)"
    r"|#[^\n]*"
    r"|[\[\]{}.,=\n]",
    re.DOTALL,
)


_LONG_INTEGER = "an integer has more than {} digits"


class TooDeep(ValueError):
    """A document nested deeper than the limit; the message names what and the limit."""

    def __init__(self, what: str, limit: int) -> None:
        super().__init__(f"{what} is nested deeper than {limit} levels (arrays, tables or objects within each other)")
        self.limit = limit


def json_nesting(text: str, stop_above: int = MAX_NESTING) -> int:
    """Levels of arrays and objects (`[]` is 1, `{"a": [1]}` is 2); counting stops past `stop_above`."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(text):
        char = text[match.start()]
        if char in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        elif char in "]}":
            depth -= 1
    return deepest


def toml_nesting(text: str, stop_above: int = MAX_NESTING) -> int:
    """An upper bound on the levels of tables a TOML text builds: the document is 1, each open bracket
    and each dot of a key one more (a dot in a number counts too: it only makes the bound looser)."""
    depth = dots = 0
    deepest = 1
    for match in _TOML_TOKENS.finditer(text):
        char = text[match.start()]
        if char in "\"'#":
            continue
        if char in "[{":
            depth += 1
            dots = 0
        elif char in "]}":
            depth = max(depth - 1, 0)
            dots = 0
        elif char == ".":
            dots += 1
        else:  # `,`, `=` or a new line ends a key
            dots = 0
        deepest = max(deepest, 1 + depth + dots)
        if deepest > stop_above:
            break
    return deepest


def structure_nesting(value: Any) -> int:
    """Levels of lists and dicts in a parsed value (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def loads_json(text: str | bytes, what: str, limit: int = MAX_NESTING) -> Any:
    """`json.loads` for untrusted input: TooDeep past `limit` levels, ValueError for anything else wrong
    (not UTF-8, not JSON, an integer too long to convert), never RecursionError."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # UnicodeDecodeError is a ValueError
    # Never deeper than the brackets it holds: a short document skips the scan.
    if text.count("[") + text.count("{") > limit and json_nesting(text, limit) > limit:
        raise TooDeep(what, limit)
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except ValueError:  # int(): more digits than sys.get_int_max_str_digits()
        raise ValueError(_LONG_INTEGER.format(sys.get_int_max_str_digits())) from None


def loads_toml(text: str, what: str, limit: int = MAX_NESTING) -> dict[str, Any]:
    """`tomllib.loads` with the same guarantees as `loads_json`."""
    if toml_nesting(text, limit) > limit:
        raise TooDeep(what, limit)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        raise
    except ValueError:
        raise ValueError(_LONG_INTEGER.format(sys.get_int_max_str_digits())) from None
    if structure_nesting(document) > limit:  # headers and dotted keys add up across lines
        raise TooDeep(what, limit)
    return document
