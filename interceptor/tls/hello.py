"""The server name (SNI) and TLS version a client offers in its ClientHello, sans-I/O: bytes in, values out.

A Withings scale that does not upload over plain HTTP shows itself by opening TLS to the address our DNS
gave it; its ClientHello names the host it wanted. Nothing else of TLS is spoken here. Layouts:
RFC 8446 §5.1 (record: type 22 = handshake, version, 2-byte length of at most 2^14), §4 and §4.1.2
(handshake type 1 = client_hello with a 3-byte length; legacy_version, 32 random bytes, a session id of
at most 32 bytes, cipher suites, compression methods, then extensions), RFC 6066 §3 (extension 0,
server_name: a list of (name type 0 = host_name, 2-byte length, ASCII host name)), RFC 8446 §4.2.1
(extension 43, supported_versions: a 1-byte length, then 2-byte versions). A hello may be split over
several records (§5.1); it is read up to `MAX_HELLO_BYTES`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CONTENT_HANDSHAKE = 22
HANDSHAKE_CLIENT_HELLO = 1
MAX_RECORD_BYTES = 1 << 14  # RFC 8446 §5.1: a plaintext record carries at most 2^14 bytes
MAX_HELLO_BYTES = 1 << 14  # a ClientHello with post-quantum key shares is under 2 KiB; far beyond is no hello
EXTENSION_SERVER_NAME = 0
EXTENSION_SUPPORTED_VERSIONS = 43
NAME_TYPE_HOST = 0
_VERSIONS = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}
_HOST_NAME = re.compile(rb"[A-Za-z0-9_-]{1,63}(\.[A-Za-z0-9_-]{1,63})*\.?")
MAX_HOST_NAME = 253


class HelloError(ValueError):
    """Not a TLS ClientHello, or a damaged one; the message says where."""


@dataclass(frozen=True)
class ClientHello:
    server_name: str | None  # lower case, without a trailing dot; None when the client sent none
    version: str  # the highest version offered, e.g. "TLS 1.3"


class _Reader:
    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.offset = 0
        self.what = what

    def take(self, count: int, field: str) -> bytes:
        end = self.offset + count
        if end > len(self.data):
            raise HelloError(f"{self.what}: {field} runs past the end ({count} byte(s) at {self.offset} of"
                             f" {len(self.data)})")
        chunk = self.data[self.offset:end]
        self.offset = end
        return chunk

    def number(self, size: int, field: str) -> int:
        return int.from_bytes(self.take(size, field), "big")

    def vector(self, length_size: int, field: str) -> bytes:
        return self.take(self.number(length_size, f"{field} length"), field)

    @property
    def left(self) -> int:
        return len(self.data) - self.offset


def handshake_bytes(data: bytes) -> bytes | None:
    """The handshake message carried by the records at the start of `data`: the bytes of the first
    handshake message when complete, None while more records are needed."""
    collected = bytearray()
    offset = 0
    while True:
        if len(collected) >= 4:
            needed = 4 + int.from_bytes(collected[1:4], "big")
            if needed > MAX_HELLO_BYTES:
                raise HelloError(f"the ClientHello claims {needed} bytes, over the {MAX_HELLO_BYTES} read")
            if len(collected) >= needed:
                return bytes(collected[:needed])
        if len(data) - offset < 5:
            return None
        content_type, major, length = data[offset], data[offset + 1], int.from_bytes(data[offset + 3:offset + 5], "big")
        if content_type != CONTENT_HANDSHAKE or major != 3:
            raise HelloError(f"not a TLS handshake record (starts {data[offset:offset + 3].hex()})")
        if length == 0 or length > MAX_RECORD_BYTES:
            raise HelloError(f"a TLS record of {length} bytes is out of bounds (1 to {MAX_RECORD_BYTES})")
        if len(data) - offset - 5 < length:
            return None
        collected += data[offset + 5:offset + 5 + length]
        offset += 5 + length


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The hello at the start of `data` (what a client sent first); None while it is incomplete."""
    message = handshake_bytes(data)
    if message is None:
        return None
    if message[0] != HANDSHAKE_CLIENT_HELLO:
        raise HelloError(f"the first handshake message is type {message[0]}, not a ClientHello (1)")
    hello = _Reader(message[4:], "ClientHello")
    legacy_version = hello.number(2, "legacy_version")
    hello.take(32, "random")
    if len(hello.vector(1, "legacy_session_id")) > 32:
        raise HelloError("ClientHello: legacy_session_id is longer than 32 bytes")
    hello.vector(2, "cipher_suites")
    hello.vector(1, "legacy_compression_methods")
    server_name: str | None = None
    versions = [legacy_version]
    if hello.left:  # before TLS 1.2 a hello may end here, without extensions
        extensions = _Reader(hello.vector(2, "extensions"), "ClientHello extensions")
        while extensions.left:
            kind = extensions.number(2, "extension type")
            body = extensions.vector(2, f"extension {kind}")
            if kind == EXTENSION_SERVER_NAME:
                server_name = _server_name(body)
            elif kind == EXTENSION_SUPPORTED_VERSIONS:
                listed = _Reader(body, "supported_versions").vector(1, "versions")
                versions += [int.from_bytes(listed[index:index + 2], "big") for index in range(0, len(listed) - 1, 2)]
    known = [version for version in versions if version in _VERSIONS]  # GREASE values (RFC 8701) are not versions
    return ClientHello(server_name, _VERSIONS[max(known)] if known else f"unknown (0x{legacy_version:04x})")


def _server_name(body: bytes) -> str | None:
    names = _Reader(_Reader(body, "server_name").vector(2, "server_name_list"), "server_name_list")
    while names.left:
        name_type = names.number(1, "name type")
        name = names.vector(2, "host name")
        if name_type != NAME_TYPE_HOST:
            continue
        if len(name) > MAX_HOST_NAME + 1 or not _HOST_NAME.fullmatch(name):
            raise HelloError("server_name: the host name is not a DNS name")
        return name.decode("ascii").rstrip(".").lower()
    return None
