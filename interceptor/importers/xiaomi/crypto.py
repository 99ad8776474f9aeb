"""Xiaomi cloud request signing and RC4, sans-I/O: bytes and strings in, form fields out.

The algorithm is `shared/reference/cloud-vectors.md` ("Algorithm"), pinned by its vectors V1 and V4
and the RFC 6229 RC4 anchor (tests/importers/test_xiaomi_crypto.py):

* nonce = 8 random bytes ‖ uint32 BE of whole minutes since the epoch; sent base64 as `_nonce`;
* signed nonce = SHA-256(ssecurity ‖ nonce): its base64 text goes into signatures, its 32 raw bytes
  key RC4 with the first 1024 keystream bytes dropped;
* `rc4_hash__` = signature over the plaintext `data`; then `data` and `rc4_hash__` are encrypted; then
  `signature` covers both ciphertexts; the answer is base64 RC4 with a fresh keystream.

The signed path is passed in by the caller, never cut out of a URL: the micloud way of splitting
on "com" truncates `/eco/common/...` to `/eco/` (the reference's pitfall). Randomness and the clock
come from the caller, so every function here is a pure function of its arguments.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher

NONCE_RANDOM_BYTES = 8
NONCE_BYTES = NONCE_RANDOM_BYTES + 4
RC4_DROP = 1024


class CryptoError(ValueError):
    """An answer that is not what the signing scheme produces (not base64, not JSON after RC4)."""


def nonce(random8: bytes, unix_seconds: float) -> bytes:
    """8 random bytes and the minute counter, big-endian (reference: "nonce (12 bytes)")."""
    if len(random8) != NONCE_RANDOM_BYTES:
        raise ValueError(f"the nonce needs {NONCE_RANDOM_BYTES} random bytes, got {len(random8)}")
    return random8 + int(unix_seconds // 60).to_bytes(4, "big")


def nonce_minutes(nonce_bytes: bytes) -> int:
    """The minute counter a nonce carries (what a server checks for freshness)."""
    if len(nonce_bytes) != NONCE_BYTES:
        raise CryptoError(f"a nonce is {NONCE_BYTES} bytes, this one is {len(nonce_bytes)}")
    return int.from_bytes(nonce_bytes[NONCE_RANDOM_BYTES:], "big")


def signed_nonce(ssecurity: bytes, nonce_bytes: bytes) -> bytes:
    return hashlib.sha256(ssecurity + nonce_bytes).digest()


def rc4(key: bytes, data: bytes) -> bytes:
    """RC4 with the first 1024 keystream bytes discarded; the same call encrypts and decrypts."""
    stream = Cipher(ARC4(key), mode=None).encryptor()
    stream.update(bytes(RC4_DROP))
    return stream.update(data)


def signature(path: str, fields: Mapping[str, str], key: bytes) -> str:
    """base64 SHA-1 of `POST&<path>&k=v&...&<base64 signed nonce>`, fields in insertion order."""
    parts = ["POST", path, *(f"{name}={value}" for name, value in fields.items()),
             base64.b64encode(key).decode()]
    return base64.b64encode(hashlib.sha1("&".join(parts).encode()).digest()).decode()


def compact_json(value: Any) -> str:
    """The `data` text as the reference's vectors write it: no spaces, keys in the given order."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class SignedRequest:
    """The form to POST and the key its answer is encrypted with."""

    form: dict[str, str]
    key: bytes


def sign_request(path: str, data: str, ssecurity: bytes, nonce_bytes: bytes) -> SignedRequest:
    """Steps 1–4 of the reference: hash, encrypt, sign, add the nonce."""
    key = signed_nonce(ssecurity, nonce_bytes)
    plain = {"data": data}
    plain["rc4_hash__"] = signature(path, plain, key)
    encrypted = {name: base64.b64encode(rc4(key, value.encode())).decode() for name, value in plain.items()}
    form = {**encrypted, "signature": signature(path, encrypted, key),
            "_nonce": base64.b64encode(nonce_bytes).decode()}
    return SignedRequest(form, key)


def decrypt_response(body: bytes | str, key: bytes) -> dict[str, Any]:
    """The `{code, message, result}` object of an answer. Errors may come back unencrypted
    (reference §1.4, garmin-weight-sync's fallback): a body that is already a JSON object is taken as is."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    stripped = text.strip()
    if stripped.startswith("{"):
        return _object(stripped)
    try:
        ciphertext = base64.b64decode(stripped, validate=True)
    except ValueError:
        raise CryptoError(f"the answer is neither base64 nor JSON (starts {stripped[:40]!r})") from None
    return _object(rc4(key, ciphertext).decode("utf-8", "replace"))


def _object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise CryptoError("the answer did not decrypt to JSON: the session key is not the one the cloud "
                          "used (an expired or foreign session)") from None
    if not isinstance(value, dict):
        raise CryptoError(f"the answer is JSON but not an object ({type(value).__name__})")
    return value
