"""ClientHellos as real TLS stacks write them: Python's `ssl` (OpenSSL) into a memory BIO, no socket."""

from __future__ import annotations

import contextlib
import ssl


def client_hello(server_name: str | None, maximum: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3,
                 alpn: list[str] | None = None) -> bytes:
    """The bytes OpenSSL sends first for a connection to `server_name` (None: no SNI)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.maximum_version = maximum
    if alpn:
        context.set_alpn_protocols(alpn)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    connection = context.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with contextlib.suppress(ssl.SSLWantReadError):
        connection.do_handshake()
    return outgoing.read()


def records(handshake: bytes, size: int) -> bytes:
    """The handshake message of `hello` re-cut into records of `size` bytes (RFC 8446 §5.1 allows it)."""
    cut = b""
    for start in range(0, len(handshake), size):
        chunk = handshake[start:start + size]
        cut += bytes([22, 3, 1]) + len(chunk).to_bytes(2, "big") + chunk
    return cut
