"""What counts as a secret, and how it is hidden: one module for every output of the project.

Logs, the request log, capture files, `config check`, `doctor` and every error message mask the same
things, because they all call this module:

* form fields and URL query parameters whose name says secret, the name read the way the server
  reads it (percent-escapes and `+` decoded), so `%68ash=` is `hash=`: the scale's `hash` proves
  knowledge of its device secret (withings-protocol.md §1.3), and with the nonce it answers it lets
  anyone try passwords offline;
* HTTP `Authorization` headers (the BLE gateway's bearer token) and cookies;
* the password in a URL's userinfo (`http://user:password@influx:8086`);
* in text that came from elsewhere (an InfluxDB error body that echoes the request), the values of
  `Authorization`/`Bearer`/`Token` and secret-named fields, long random-looking tokens, and the
  configured secrets themselves, wherever they appear.

`StreamMasker` does the same to a client's byte stream as it is recorded, keeping its length, so a
capture file still parses (TCP sequence numbers, Content-Length) and holds no secret.

Sans-I/O and standard library only: the BLE gateway and the capture writer use it too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, quote_plus, unquote_to_bytes, urlsplit, urlunsplit

MASK = "<masked>"
_MASK_BYTES = MASK.encode()

# A name holding one of these words, or equal to one of the exact names, holds a secret. The config
# keys (`password`, `token`, `bind_key`), the scale's `hash`, InfluxDB v1's `p` query parameter.
_WORDS = ("password", "passwd", "secret", "token", "key", "hash")
_EXACT = frozenset({"p", "pass", "pwd", "authorization", "proxy-authorization", "cookie", "set-cookie"})
_WORDS_BYTES = tuple(word.encode() for word in _WORDS)
_EXACT_BYTES = frozenset(name.encode() for name in _EXACT)


def is_secret_name(name: str) -> bool:
    """Does a field, parameter, header or config key of this name hold a secret?"""
    folded = name.strip().strip("\x00").lower()
    return folded in _EXACT or any(word in folded for word in _WORDS)


def _is_secret_raw_name(raw: bytes) -> bool:
    """`is_secret_name` of a form field name as it came off the wire (escapes not yet decoded)."""
    if b"%" in raw or b"+" in raw:
        raw = unquote_to_bytes(raw.replace(b"+", b" "))
    folded = raw.strip().strip(b"\x00").lower()
    return folded in _EXACT_BYTES or any(word in folded for word in _WORDS_BYTES)


# Verdicts on the names seen: a scale sends the same dozen names every time, so a request's names cost
# a dict lookup each. Bounded, because names come from the network.
_NAME_VERDICTS: dict[bytes, bool] = {}
_NAME_VERDICTS_LIMIT = 4096


def _is_secret_raw_name_remembered(raw: bytes) -> bool:
    verdict = _NAME_VERDICTS.get(raw)
    if verdict is None:
        verdict = _is_secret_raw_name(raw)
        if len(_NAME_VERDICTS) >= _NAME_VERDICTS_LIMIT:
            _NAME_VERDICTS.clear()
        _NAME_VERDICTS[raw] = verdict
    return verdict


def mask_mapping(fields: Mapping[str, str]) -> dict[str, str]:
    """Decoded form fields (or headers) with the values of secret-named ones replaced."""
    return {name: (MASK if is_secret_name(name) else value) for name, value in fields.items()}


def mask_form(body: bytes) -> bytes:
    """An `application/x-www-form-urlencoded` body (or a query string) with the value of every
    secret-named field replaced by `<masked>`; everything else is kept byte for byte."""
    if b"=" not in body:
        return body
    parts = body.split(b"&")
    changed = False
    for index, part in enumerate(parts):
        name, equals, _ = part.partition(b"=")
        if equals and _is_secret_raw_name_remembered(name):
            parts[index] = name + b"=" + _MASK_BYTES
            changed = True
    return b"&".join(parts) if changed else body


def mask_query(text: str) -> str:
    """`mask_form` for text (a query string, or a form already decoded to str)."""
    if "=" not in text:
        return text
    return mask_form(text.encode("utf-8", "surrogateescape")).decode("utf-8", "surrogateescape")


def mask_path(path_qs: str) -> str:
    """A request target (`/cgi-bin/once?hash=...`) with its query string masked."""
    path, question, query = path_qs.partition("?")
    return f"{path}?{mask_query(query)}" if question else path_qs


def mask_url(url: str) -> str:
    """A URL with the password of its userinfo and its secret query parameters masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, host = netloc.rpartition("@")
            user, colon, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{host}" if colon else f"{userinfo}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, mask_query(parts.query), parts.fragment))
    except ValueError:  # not parseable as a URL: mask what looks like userinfo anyway
        return _USERINFO.sub(rf"\1{MASK}@", url)


# -- free text: error bodies and messages ------------------------------------------------------------

_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s/:@]*:)[^\s/@]*@")
_AUTHORIZATION = re.compile(
    r"""(?i)((?:proxy-)?authorization["']?\s*[:=]\s*["']?(?:(?:bearer|basic|token|digest)\s+)?)[^\s"',;}\]]+""")
_SCHEME_CREDENTIAL = re.compile(r"(?i)\b((?:bearer|basic|token)\s+)[A-Za-z0-9._~+/:=-]{6,}")
_SECRET_FIELD = re.compile(
    r"""(?i)(["']?\b[a-z0-9_.-]*(?:password|passwd|secret|token|hash|key)[a-z0-9_.-]*["']?\s*[:=]\s*["']?)"""
    r"""[^\s"'&,;}\]]+""")
# Long runs of base64/hex that mix upper case, lower case and digits: API tokens (an InfluxDB 2 token
# is 88 such characters), not words, paths or lower-case hex ids.
_TOKEN_LIKE = re.compile(r"(?<![A-Za-z0-9_-])(?=[A-Za-z0-9_+/-]*[A-Z])(?=[A-Za-z0-9_+/-]*[a-z])"
                         r"(?=[A-Za-z0-9_+/-]*[0-9])[A-Za-z0-9_+/-]{32,}={0,2}")
_KNOWN_MIN_CHARS = 4  # shorter configured secrets would mask ordinary words; they are weak anyway


def scrub(text: str, known: Iterable[str] = ()) -> str:
    """`text` with everything token-like and every `known` secret (and its URL-encoded forms) masked:
    for text that came from elsewhere, e.g. an InfluxDB error body echoing our Authorization header."""
    for secret in sorted({value for value in known if len(value) >= _KNOWN_MIN_CHARS}, key=len, reverse=True):
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            text = text.replace(form, MASK)
    text = _USERINFO.sub(rf"\1{MASK}@", text)
    text = _AUTHORIZATION.sub(rf"\1{MASK}", text)
    text = _SCHEME_CREDENTIAL.sub(rf"\1{MASK}", text)
    text = _SECRET_FIELD.sub(rf"\1{MASK}", text)
    return _TOKEN_LIKE.sub(MASK, text)


# -- a client's byte stream, as a capture records it ---------------------------------------------

# A form field or query parameter: a name (bounded) after the start of a line, `?`, `&` or `;`.
_FIELD = re.compile(rb"(?m)(?:^|(?<=[?&;]))([^=&?;\s]{1,256})=([^&\s]*)")
_HEADER = re.compile(rb"(?im)^((?:proxy-)?authorization|cookie)[ \t]*:[ \t]*"
                     rb"(?:(?:bearer|basic|token|digest)[ \t]+)?([^\r\n]*)")
_TERMINATORS = b"& \r\n"
NAME_HOLD = 256  # bytes of a field name kept back until its `=` (or its end) arrives
HOLD = 16 * 1024  # longest run kept back waiting for a terminator; beyond, it is written masked


class StreamMasker:
    """Masks what a client sends, as it arrives, for a capture file: secret values (form fields and
    query parameters with secret names, Authorization and Cookie header values) become `*`, byte for
    byte, so the length of everything is kept. A secret split across reads is still found: the bytes
    after the last `&` or newline are held back until more arrive, the server answers (`flush`), or
    they exceed `HOLD` bytes."""

    def __init__(self) -> None:
        self._held = b""
        self._masking = False  # inside a secret value that continues in the next bytes

    def feed(self, data: bytes) -> bytes:
        """The masked bytes that can be written now (possibly fewer than given; never more)."""
        buffer = self._held + data if self._held else data
        cut = max(buffer.rfind(b"&"), buffer.rfind(b"\n")) + 1
        forced = cut == 0
        if forced:
            if len(buffer) <= HOLD:
                self._held = buffer
                return b""
            cut = len(buffer)
        block, self._held = buffer[:cut], buffer[cut:]
        return self._mask(block, complete=not forced)

    def flush(self, *, final: bool = False) -> bytes:
        """What is held back, masked: before the server's answer is recorded (the request is then
        whole), and at the end of the connection. A field name still arriving is kept unless `final`."""
        held = self._held
        if not held:
            return b""
        if not final and not self._masking and b"=" not in held and len(held) <= NAME_HOLD:
            return b""
        self._held = b""
        return self._mask(held, complete=True)

    def _mask(self, block: bytes, *, complete: bool) -> bytes:
        """`block` starts where a field or a line may start (or inside a secret value, `_masking`)."""
        out = bytearray(block)
        start = 0
        if self._masking:
            end = next((index for index, byte in enumerate(block) if byte in _TERMINATORS), len(block))
            out[:end] = b"*" * end
            start = end
            self._masking = end == len(block) and not complete
            if self._masking:
                return bytes(out)
        for match in _FIELD.finditer(block, start):
            if _is_secret_raw_name_remembered(match.group(1)):
                low, high = match.span(2)
                out[low:high] = b"*" * (high - low)
                if high == len(block) and not complete:
                    self._masking = True
        for match in _HEADER.finditer(block, start):
            low, high = match.span(2)
            out[low:high] = b"*" * (high - low)
        return bytes(out)
