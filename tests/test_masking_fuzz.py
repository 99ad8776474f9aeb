"""Fuzzing the masking and bounding code every output goes through (interceptor/masking.py,
interceptor/notices.py, interceptor/limits.py): whatever a client or a server sends, no secret
survives, lengths are kept where they must be, and log lines stay short and printable."""

from __future__ import annotations

import logging
import string
from urllib.parse import quote, quote_plus

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.limits import RateLimiter
from interceptor.masking import MASK, StreamMasker, is_secret_name, mask_form, mask_url, scrub
from interceptor.notices import Notices, Quoted, excerpt
from interceptor.withings.protocol import parse_form

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SECRET_NAMES = ["hash", "password", "token", "bind_key", "p", "HASH", "Api_Token", "secret"]
PLAIN = st.text(string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12).filter(
    lambda name: not is_secret_name(name))
VALUE = st.text(string.ascii_letters + string.digits + " -_.:/{}[]\"", max_size=40)
SECRET_VALUE = st.text(string.ascii_letters + string.digits, min_size=4, max_size=30).map(lambda text: f"Zq9{text}")


@st.composite
def encoded(draw: st.DrawFn, name: str) -> str:
    """`name` with any of its characters percent-encoded, in either case of hex digit."""
    out = []
    for character in name:
        if draw(st.booleans()):
            escape = f"%{ord(character):02x}"
            out.append(escape.upper() if draw(st.booleans()) else escape)
        else:
            out.append(character)
    return "".join(out)


@st.composite
def forms(draw: st.DrawFn) -> tuple[bytes, list[str], dict[str, str]]:
    """A form body with secret fields (names encoded every which way) among plain ones; the secret
    values, and what each plain field holds."""
    fields: list[tuple[str, str]] = []
    secrets: list[str] = []
    plain: dict[str, str] = {}
    for _ in range(draw(st.integers(1, 12))):
        if draw(st.booleans()):
            secret = draw(SECRET_VALUE)
            secrets.append(secret)
            fields.append((draw(encoded(draw(st.sampled_from(SECRET_NAMES)))), quote_plus(secret)))
        else:
            name, value = draw(PLAIN), draw(VALUE)
            plain.setdefault(name, value)
            fields.append((name, quote_plus(value)))
    return "&".join(f"{name}={value}" for name, value in fields).encode(), secrets, plain


@FUZZ
@given(forms())
def test_fuzz_a_masked_form_keeps_every_plain_field_and_no_secret(
        case: tuple[bytes, list[str], dict[str, str]]) -> None:
    body, secrets, plain = case
    masked = mask_form(body)
    assert not [secret for secret in secrets if secret.encode() in masked]
    parsed = parse_form(masked)
    for name, value in parsed.items():
        assert value == (MASK if is_secret_name(name) else plain[name])
    assert set(plain) <= set(parsed)


@FUZZ
@given(st.text(string.ascii_letters + string.digits + "!$&'()*+,;=._~-", min_size=1, max_size=30).map(
           lambda text: f"Pw9{text}"),
       st.sampled_from(["http", "https"]), st.text(string.ascii_lowercase, min_size=1, max_size=10),
       st.one_of(st.just(""), st.just("/api"), st.just("/x?u=admin&p=Zq9queryPw")))
def test_fuzz_a_masked_url_shows_no_password(password: str, scheme: str, user: str, tail: str) -> None:
    url = f"{scheme}://{user}:{quote(password, safe='')}@influx.lan:8086{tail}"
    shown = mask_url(url)
    assert quote(password, safe="") not in shown.split("@")[0] and "Zq9queryPw" not in shown
    assert shown.startswith(f"{scheme}://{user}:{MASK}@influx.lan:8086")


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """Requests as a client would send them on one connection: secrets in the query string, in an
    Authorization header and in the form body."""
    out = b""
    secrets: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        body, body_secrets, _ = draw(forms())
        query, query_secrets, _ = draw(forms())
        secrets += body_secrets + query_secrets
        token = draw(SECRET_VALUE)
        secrets.append(token)
        scheme = draw(st.sampled_from(["Bearer ", "Basic ", "token ", ""]))
        header = draw(st.sampled_from(["Authorization", "authorization", "Proxy-Authorization"]))
        out += (f"POST /cgi-bin/x?{query.decode()} HTTP/1.1\r\nHost: h\r\n{header}: {scheme}{token}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return out, secrets


def masked_in_pieces(stream: bytes, cuts: list[int]) -> bytes:
    masker = StreamMasker()
    out = b""
    start = 0
    for cut in sorted(set(cuts)):
        out += masker.feed(stream[start:cut])
        start = cut
    return out + masker.feed(stream[start:]) + masker.flush(final=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.lists(st.integers(0, 4000), max_size=40))
def test_fuzz_a_masked_stream_keeps_its_length_and_no_secret_however_it_arrives(
        case: tuple[bytes, list[str]], cuts: list[int]) -> None:
    stream, secrets = case
    out = masked_in_pieces(stream, [cut for cut in cuts if cut < len(stream)])
    assert len(out) == len(stream)
    assert out == masked_in_pieces(stream, [])  # the same whatever the reads
    assert not [secret for secret in secrets if secret.encode() in out]
    assert all(a == b or a == ord("*") for a, b in zip(out, stream, strict=True))


@FUZZ
@given(st.one_of(st.text(), st.binary()), st.integers(1, 300))
def test_fuzz_an_excerpt_is_short_and_printable(value: str | bytes, limit: int) -> None:
    shown = excerpt(value, limit)
    assert shown.isprintable()
    assert len(shown) <= limit + len(f"... [{len(value):,} characters in all]")
    if isinstance(value, str) and value.isprintable() and len(value) <= limit:
        assert shown == value


@FUZZ
@given(st.one_of(st.binary(max_size=2000), st.text(max_size=2000), st.dictionaries(st.text(max_size=20),
                                                                                   st.text(max_size=300), max_size=80)))
def test_fuzz_quoted_client_input_is_short_and_printable(value: bytes | str | dict[str, str]) -> None:
    shown = str(Quoted(value))
    assert shown.isprintable() and len(shown) < 260


@FUZZ
@given(st.dictionaries(PLAIN, VALUE, max_size=10), st.dictionaries(st.sampled_from(SECRET_NAMES), SECRET_VALUE,
                                                                   min_size=1, max_size=4))
def test_fuzz_quoted_fields_show_no_secret(plain: dict[str, str], secret: dict[str, str]) -> None:
    fields = {**plain, **secret}
    assert not [value for value in secret.values() if value in str(Quoted(fields, limit=10_000))]


@FUZZ
@given(st.lists(st.text(string.ascii_letters + string.digits + "/+=:@!%", min_size=4, max_size=40), min_size=1,
                max_size=3),
       st.text(max_size=200), st.sampled_from(["{}", "Authorization: Token {}", "?p={}", "'{}'", "Basic {}"]))
def test_fuzz_scrubbed_text_holds_no_known_secret(secrets: list[str], noise: str, shape: str) -> None:
    text = noise + shape.format(secrets[0]) + " " + quote(secrets[-1], safe="") + noise
    cleaned = scrub(text, secrets)
    assert not [secret for secret in secrets if secret in cleaned or quote(secret, safe="") in cleaned]


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 30), st.integers(0, 20)), max_size=300))
def test_fuzz_notices_keep_each_clients_budget_and_count_the_rest(events: list[tuple[float, int]]) -> None:
    logger = logging.getLogger("test.notices.per_client")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        notices = Notices(logger, 0.0, what="junk", lines_per_window=6, lines_per_client=2, window=60.0)
        now = 0.0
        for step, client in events:
            now += step
            notices.notice(now, f"10.0.0.{client}", "junk from %s at %s", f"10.0.0.{client}", now)
        notices.flush(now + 60.0)
    finally:
        logger.removeHandler(handler)
    full = [record.args for record in records if record.getMessage().startswith("junk from")]
    summaries = [int(record.getMessage().split()[0]) for record in records if " more junk " in record.getMessage()]
    assert len(full) + sum(summaries) == len(events)
    windows: dict[tuple[int, str], int] = {}
    for client, moment in full:  # type: ignore[misc]
        key = (int(moment // 60), client)
        windows[key] = windows.get(key, 0) + 1
    # A window starts at the first notice after the previous one ended: at most two windows per minute.
    assert all(count <= 2 * 2 for count in windows.values())


@FUZZ
@given(st.lists(st.tuples(st.floats(0, 2), st.integers(1, 5)), max_size=200), st.floats(0.5, 50),
       st.integers(1, 20))
def test_fuzz_a_rate_limiter_never_allows_more_than_its_burst_and_rate(
        requests: list[tuple[float, int]], rate: float, burst: int) -> None:
    limiter = RateLimiter(rate, burst)
    now = 0.0
    allowed = 0
    for step, cost in requests:
        now += step
        if limiter.allow("10.0.0.1", now, cost):
            allowed += cost
    assert allowed <= burst + rate * now + 1e-6
