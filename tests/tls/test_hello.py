"""The ClientHello parser: real hellos of OpenSSL (TLS 1.2 and 1.3, with and without SNI), a hello cut
into records anywhere, every prefix of one, and arbitrary bytes (hypothesis): a value, "need more"
or HelloError, never anything else."""

from __future__ import annotations

import ssl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from interceptor.tls.hello import MAX_HELLO_BYTES, ClientHello, HelloError, handshake_bytes, parse_client_hello
from tests.tls.hellos import client_hello, records

SCALE = "scalews.withings.net"


@pytest.mark.parametrize(("maximum", "version"), [(ssl.TLSVersion.TLSv1_3, "TLS 1.3"),
                                                  (ssl.TLSVersion.TLSv1_2, "TLS 1.2")])
def test_openssl_hellos_give_the_server_name_and_version(maximum: ssl.TLSVersion, version: str) -> None:
    hello = client_hello(SCALE, maximum, alpn=["http/1.1"])
    assert parse_client_hello(hello) == ClientHello(SCALE, version)


def test_upper_case_and_a_trailing_dot_are_the_same_name() -> None:
    assert parse_client_hello(client_hello("ScaleWS.Withings.NET"))  == ClientHello(SCALE, "TLS 1.3")


def test_a_hello_without_server_name() -> None:
    assert parse_client_hello(client_hello(None)) == ClientHello(None, "TLS 1.3")


def test_a_hello_without_extensions_before_tls_1_2() -> None:
    """RFC 5246 §7.4.1.2: extensions may be absent; such a hello names no server."""
    body = bytes([3, 1]) + bytes(32) + b"\x00" + b"\x00\x02\x00\x2f" + b"\x01\x00"
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    assert parse_client_hello(records(handshake, 100)) == ClientHello(None, "TLS 1.0")


def test_every_prefix_needs_more_and_any_record_cut_gives_the_same_hello() -> None:
    hello = client_hello(SCALE)
    expected = parse_client_hello(hello)
    for end in range(len(hello)):
        assert parse_client_hello(hello[:end]) is None
    handshake = handshake_bytes(hello)
    assert handshake is not None
    for size in (1, 7, 64, 512):
        assert parse_client_hello(records(handshake, size)) == expected


@pytest.mark.parametrize(("data", "message"), [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "not a TLS handshake record"),
    (b"\x16\x03\x01\x00\x00", "out of bounds"),
    (b"\x16\x03\x01\x00\x04\x02\x00\x00\x00", "not a ClientHello"),
    (b"\x16\x03\x01\x00\x04\x01\xff\xff\xff", f"over the {MAX_HELLO_BYTES} read"),
    (records(b"\x01\x00\x00\x05\x03\x03\x00\x00\x00", 100), "random runs past the end"),
])
def test_what_is_not_a_hello_says_why(data: bytes, message: str) -> None:
    with pytest.raises(HelloError, match=message):
        parse_client_hello(data)


def test_a_server_name_that_is_not_a_dns_name_is_refused() -> None:
    hello = client_hello("a" * 20)
    forged = hello.replace(b"a" * 20, b"a\x00<script>aaaaaaaaaa")
    with pytest.raises(HelloError, match="not a DNS name"):
        parse_client_hello(forged)


@given(st.binary(max_size=600))
def test_arbitrary_bytes(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except HelloError:
        return
    assert result is None or isinstance(result, ClientHello)


@given(st.binary(min_size=1, max_size=40), st.integers(min_value=0), st.integers(min_value=1, max_value=300))
def test_damaged_real_hellos(garbage: bytes, where: int, size: int) -> None:
    """Real hellos with bytes overwritten anywhere and cut into records of any size."""
    handshake = handshake_bytes(client_hello(SCALE))
    assert handshake is not None
    at = where % len(handshake)
    damaged = (handshake[:at] + garbage + handshake[at + len(garbage):])[:len(handshake)]
    try:
        result = parse_client_hello(records(damaged, size))
    except HelloError:
        return
    assert result is None or isinstance(result, ClientHello)
