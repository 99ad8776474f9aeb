"""Every service-data vector of ble-vectors.md through the sans-I/O decoders, positive and negative."""

from __future__ import annotations

from typing import Any

import pytest

from interceptor.ble import errors
from interceptor.ble.decode import decode_service_data, describe
from tests.ble.vectors import VECTORS


def _check(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    for name, value in expected.items():
        if isinstance(value, float):
            assert actual[name] == pytest.approx(value, abs=1e-9), name
        else:
            assert actual[name] == value, name


@pytest.mark.parametrize("vector", VECTORS["service_data"], ids=lambda vector: vector["id"])
def test_positive_vector(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["key"]) if "key" in vector else None
    samples = [describe(sample) for sample in
               decode_service_data(vector["uuid"], bytes.fromhex(vector["data"]), vector["mac"], key)]
    assert len(samples) == len(vector["expect"])
    for actual, expected in zip(samples, vector["expect"], strict=True):
        _check(actual, expected)


@pytest.mark.parametrize("vector", VECTORS["negative"], ids=lambda vector: vector["id"])
def test_negative_vector(vector: dict[str, Any]) -> None:
    key = bytes.fromhex(vector["key"]) if "key" in vector else None
    with pytest.raises(getattr(errors, vector["error"])) as raised:
        decode_service_data(vector["uuid"], bytes.fromhex(vector["data"]), vector["mac"], key)
    assert type(raised.value).__name__ == vector["error"]
    assert vector["message"] in str(raised.value)
    if key is not None:
        assert key.hex() not in str(raised.value).lower()


def test_wrong_key_is_not_no_data() -> None:
    """A wrong key and an idle frame must never look alike: one needs the user, the other nothing."""
    wrong = VECTORS["negative"][0]
    with pytest.raises(errors.BindKeyError):
        decode_service_data("fe95", bytes.fromhex(wrong["data"]), wrong["mac"], bytes(16))
    idle = next(vector for vector in VECTORS["service_data"] if vector["id"] == "IDLE-1")
    samples = decode_service_data("fe95", bytes.fromhex(idle["data"]), idle["mac"], bytes(16))
    assert describe(samples[0])["type"] == "idle"


@pytest.mark.parametrize(("control", "unit", "kilograms"), [
    (0x22, "kg", 17310 / 200), (0x23, "lb", 17310 / 100 * 0.45359237), (0x32, "jin", 17310 / 100 * 0.5),
])
def test_v1_units(control: int, unit: str, kilograms: float) -> None:
    data = bytes([control]) + bytes.fromhex("9e43e507040b101301")
    sample = describe(decode_service_data("181d", data, "50:FB:19:1B:B5:DC")[0])
    assert sample["unit"] == unit
    assert sample["weight_kg"] == pytest.approx(kilograms)


@pytest.mark.parametrize(("ctrl0", "ctrl1", "unit", "kilograms"), [
    (0x02, 0x26, "kg", 17030 / 200), (0x03, 0x26, "lb", 17030 / 100 * 0.45359237),
    (0x02, 0x66, "jin", 17030 / 100 * 0.5),
])
def test_v2_units(ctrl0: int, ctrl1: int, unit: str, kilograms: float) -> None:
    data = bytes([ctrl0, ctrl1]) + bytes.fromhex("b20705040f0201ac018642")
    sample = describe(decode_service_data("181b", data, "50:FB:19:1B:B5:DC")[0])
    assert sample["unit"] == unit
    assert sample["weight_kg"] == pytest.approx(kilograms)
    assert sample["impedance_ohm"] == 428.0


def test_unknown_mibeacon_product_is_not_a_scale() -> None:
    """A thermometer on 0xFE95 (product 0x055B) is dismissed without a key and without an error."""
    assert decode_service_data("fe95", bytes.fromhex("5020aa01da3315a8342d5801"), "58:2D:34:A8:15:33") == []
