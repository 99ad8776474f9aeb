"""The Xiaomi signing and RC4 against the reference's vectors (tests/importers/vectors.json)."""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.algorithms import ARC4
from cryptography.hazmat.primitives.ciphers import Cipher
from hypothesis import given
from hypothesis import strategies as st

from interceptor.importers.xiaomi import crypto

VECTORS = json.loads((Path(__file__).parent / "vectors.json").read_text(encoding="utf-8"))
V1 = VECTORS["signing"][0]
V4 = VECTORS["responses"][0]
SSECURITY = base64.b64decode(V1["ssecurity_b64"])
NONCE = bytes.fromhex(V1["nonce_hex"])


def test_nonce_is_random_bytes_then_minutes_big_endian() -> None:
    made = crypto.nonce(NONCE[:8], V1["minutes"] * 60 + 59.9)
    assert made == NONCE
    assert base64.b64encode(made).decode() == V1["nonce_form"]
    assert crypto.nonce_minutes(made) == V1["minutes"]


def test_signed_nonce() -> None:
    key = crypto.signed_nonce(SSECURITY, NONCE)
    assert key.hex() == V1["signed_nonce_hex"]
    assert base64.b64encode(key).decode() == V1["signed_nonce_b64"]


def test_rc4_drops_1024_bytes() -> None:
    key = bytes.fromhex(V1["signed_nonce_hex"])
    assert crypto.rc4(key, bytes(16)).hex() == V1["keystream_after_drop_hex"]
    anchor = VECTORS["rc4_anchor"]
    assert crypto.rc4(bytes.fromhex(anchor["key_hex"]), bytes(16)).hex() == anchor["stream_1024_hex"]
    plain = Cipher(ARC4(bytes.fromhex(anchor["key_hex"])), mode=None).encryptor().update(bytes(16))
    assert plain.hex() == anchor["plain_stream_0_hex"]  # the drop is what tells the two apart


def test_v1_request_form_byte_for_byte() -> None:
    signed = crypto.sign_request(V1["path"], V1["data"], SSECURITY, NONCE)
    assert signed.form == {"data": V1["form_data"], "rc4_hash__": V1["form_rc4_hash"],
                           "signature": V1["form_signature"], "_nonce": V1["nonce_form"]}
    assert list(signed.form) == ["data", "rc4_hash__", "signature", "_nonce"]
    key = bytes.fromhex(V1["signed_nonce_hex"])
    assert crypto.signature(V1["path"], {"data": V1["data"]}, key) == V1["rc4_hash_plain"]


def test_the_micloud_path_gives_a_different_signature() -> None:
    """The pitfall: splitting the URL on "com" signs `/eco/`, which the cloud would refuse."""
    wrong = crypto.sign_request(V1["micloud_path"], V1["data"], SSECURITY, NONCE)
    assert wrong.form["signature"] == V1["micloud_signature"] != V1["form_signature"]


def test_compact_json_matches_the_vector_text() -> None:
    data = {"endTime": 1, "beginTime": 1755927448000, "model": "yunmai.scales.ms104", "uid": "1234567890",
            "did": 0, "accountId": 0}
    assert crypto.compact_json(data) == V1["data"]


def test_responses_decrypt() -> None:
    key = bytes.fromhex(V1["signed_nonce_hex"])
    assert crypto.decrypt_response(V1["response_body"], key) == json.loads(V1["response_plain"])
    decrypted = crypto.decrypt_response(V4["body"].encode(), base64.b64decode(V4["key_b64"]))
    assert decrypted == json.loads(V4["plain"])
    assert crypto.rc4(key, base64.b64decode(V4["body"])).decode() == V4["plain"]  # exact bytes


def test_unencrypted_error_answers_are_read_as_they_are() -> None:
    assert crypto.decrypt_response(b' {"code":3,"message":"auth err"}', b"k" * 32)["code"] == 3


@pytest.mark.parametrize("body", [b"not base64 at all!", base64.b64encode(b"\x00" * 40), b"WzEsMl0="])
def test_garbage_answers_raise_crypto_error(body: bytes) -> None:
    with pytest.raises(crypto.CryptoError):
        crypto.decrypt_response(body, bytes(32))


@given(st.binary(max_size=300), st.binary(min_size=32, max_size=32))
def test_rc4_is_its_own_inverse(data: bytes, key: bytes) -> None:
    assert crypto.rc4(key, crypto.rc4(key, data)) == data


@given(st.binary(max_size=200))
def test_decrypt_never_fails_with_anything_but_crypto_error(body: bytes) -> None:
    with contextlib.suppress(crypto.CryptoError):
        crypto.decrypt_response(body, bytes(32))
