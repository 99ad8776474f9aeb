"""What a browser or an API client may put in a URL or a form, parsed strictly.

Every function takes text as it came from the network and returns a typed value or raises
`BadInput` with one sentence saying what was wrong and what is accepted; the handlers turn that into
a 400. Sans-I/O, so hypothesis can throw anything at it (tests/web/test_params.py).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from interceptor.store.household import Cursor

RANGES: dict[str, timedelta | None] = {"1m": timedelta(days=31), "3m": timedelta(days=92),
                                       "1y": timedelta(days=366), "all": None}
DEFAULT_RANGE = "3m"
EXTRA_CHARTS = ("fat", "muscle", "water")
MAX_ID = 2**63 - 1
MAX_TEXT = 80  # longer than any valid value: nothing longer is even looked at
_CURSOR = re.compile(r"(-?\d{1,20}(?:\.\d{1,20})?(?:e[-+]?\d{1,3})?)_(\d{1,19})")  # repr(float)_id
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


class BadInput(ValueError):
    """A parameter a user or client got wrong; the message says which and what to send instead."""


def _short(text: str) -> str:
    return repr(text[:MAX_TEXT] + ("…" if len(text) > MAX_TEXT else ""))


def time_range(text: str | None) -> str:
    if text is None or text == "":
        return DEFAULT_RANGE
    if text not in RANGES:
        raise BadInput(f"range {_short(text)} is unknown; use one of {', '.join(RANGES)}")
    return text


def since(range_name: str, now: datetime) -> datetime | None:
    span = RANGES[range_name]
    return None if span is None else now - span


def charts(values: Iterable[str]) -> tuple[str, ...]:
    """`show=fat&show=water` (a form's checkboxes) or `show=fat,water`; order as in EXTRA_CHARTS."""
    wanted: set[str] = set()
    for value in values:
        for item in value.split(","):
            if not item:
                continue
            if item not in EXTRA_CHARTS:
                raise BadInput(f"show {_short(item)} is unknown; use any of {', '.join(EXTRA_CHARTS)}")
            wanted.add(item)
    return tuple(name for name in EXTRA_CHARTS if name in wanted)


def cursor(text: str | None) -> Cursor | None:
    """A page's `after` parameter, as `Cursor.text` wrote it."""
    if text is None or text == "":
        return None
    match = _CURSOR.fullmatch(text) if len(text) <= MAX_TEXT else None
    if match is None:
        raise BadInput(f"after {_short(text)} is not a page position; follow the page's own 'older' link")
    taken_at, identifier = float(match.group(1)), int(match.group(2))
    if not math.isfinite(taken_at) or identifier > MAX_ID:
        raise BadInput(f"after {_short(text)} is out of range")
    return Cursor(taken_at, identifier)


def measurement_id(text: str) -> int:
    if not text.isascii() or not text.isdigit() or len(text) > 19 or not 0 < int(text) <= MAX_ID:
        raise BadInput(f"{_short(text)} is not a weigh-in id (a positive whole number)")
    return int(text)


def slug(text: str | None) -> str:
    """A person's slug as the config spells it (whether it is in the household is the caller's check)."""
    if not text:
        raise BadInput("say who it was: person=<slug>, one of the household's")
    if not _SLUG.fullmatch(text):
        raise BadInput(f"person {_short(text)} is not a person's slug (lower-case letters, digits, '-', '_')")
    return text

