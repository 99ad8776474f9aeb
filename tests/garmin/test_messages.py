"""What the library raises becomes one line for the user, bounded, without anything token-like:
fuzzed with hypothesis, since the library's messages quote whatever Garmin answered."""

from __future__ import annotations

import re
import secrets

from hypothesis import given
from hypothesis import strategies as st

from interceptor.garmin.library import MAX_DETAIL_CHARS, _refused, masked

TOKEN_LIKE = re.compile(r"[A-Za-z0-9._~+/=-]{24,}")


@given(st.text(max_size=2000))
def test_any_library_message_is_shown_as_one_bounded_line(text: str) -> None:
    shown = masked(text)
    assert "\n" not in shown and "\r" not in shown
    assert len(shown) <= MAX_DETAIL_CHARS + 1
    assert TOKEN_LIKE.search(shown) is None


@given(st.integers(min_value=100, max_value=599), st.text(max_size=300), st.text(max_size=300))
def test_a_token_in_an_api_error_never_reaches_the_user(status: int, before: str, after: str) -> None:
    token = secrets.token_urlsafe(32)
    error = _refused("fra", f"API Error {status} - {before}{token}{after}")
    message = str(error)
    assert token not in message and "\n" not in message
    assert message.startswith("Garmin no longer accepts fra's sign-in (401)") == (status == 401)
    assert message.startswith("Garmin refused the upload (403)") == (status == 403)
    assert message.startswith("Garmin is rate limiting this address (429)") == (status == 429)
    assert error.retry == (not (400 <= status < 500) or status in (401, 403, 429))
