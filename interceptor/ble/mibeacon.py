"""MiBeacon v5 on 0xFE95 for the S400 and S200: header, AES-128-CCM, objects (ble-scales.md §2).

Only scale product ids are decoded; every other Xiaomi device on 0xFE95 (thermometers, plugs)
yields nothing without any work, because most adverts a gateway hears are not scales.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from interceptor.ble.errors import BindKeyError, DecodeError, MissingBindKey

# Product ids (frame bytes 2–3, LE) → model (reference §2.1).
S400_PRODUCTS = {0x30D9: "MJTZC01YM", 0x3BD5: "MJTZC01YM", 0x48CF: "MJTZC01YM", 0x4B05: "MJTZC03YM"}
S200_PRODUCTS = {0x45C9: "MJTZC02YM", 0x4C04: "MJTZC02YM", 0x4DCB: "MJTZC02YM"}
SCALE_PRODUCTS = {**S400_PRODUCTS, **S200_PRODUCTS}

OBJECT_S400 = 0x6E16
OBJECT_S200 = 0x4E16
AAD = b"\x11"
HR_NOT_MEASURED = 127

_ENCRYPTED = 1 << 3
_MAC_INCLUDED = 1 << 4
_CAPABILITY_INCLUDED = 1 << 5
_OBJECT_INCLUDED = 1 << 6
_MESH = 1 << 7
_IO_CAPABILITY = 0x20


@dataclass(frozen=True, slots=True)
class Header:
    frame_control: int
    version: int
    product_id: int
    counter: int
    embedded_mac: str | None
    objects_at: int

    @property
    def encrypted(self) -> bool:
        return bool(self.frame_control & _ENCRYPTED)

    @property
    def has_objects(self) -> bool:
        return bool(self.frame_control & _OBJECT_INCLUDED)


@dataclass(frozen=True, slots=True)
class Idle:
    """A scale frame without a measurement (discovery/idle adverts): recognised, produces nothing."""

    model: str
    product_id: int


@dataclass(frozen=True, slots=True)
class S400Packet:
    """One 0x6E16 object. A barefoot weigh-in sends two: one with weight (+heart rate, one
    impedance) and one with only the other impedance; both carry the same `timestamp`."""

    model: str
    counter: int
    profile_id: int
    packed: int
    timestamp: int  # the scale's Unix time; shared by both packets of a weigh-in
    weight_kg: float | None
    heart_rate_bpm: float | None
    impedance_ohm: float | None

    @property
    def socks(self) -> bool:
        """Weight without any BIA: hr 127 and impedance 0 (vectors S400-XB-3, §4b note)."""
        hr_raw = (self.packed >> 11) & 0x7F
        return self.weight_kg is not None and hr_raw == HR_NOT_MEASURED and self.impedance_ohm is None

    @property
    def empty(self) -> bool:
        """All zeros: the person stepped off (S400-XB-4)."""
        return self.weight_kg is None and self.impedance_ohm is None


@dataclass(frozen=True, slots=True)
class S200Packet:
    model: str
    counter: int
    profile_id: int
    weight_kg: float | None
    timestamp: int


MiBeaconResult = Idle | S400Packet | S200Packet


def parse_header(data: bytes) -> Header:
    if len(data) < 5:
        raise DecodeError(f"MiBeacon frame of {len(data)} bytes is shorter than its 5-byte header")
    frame_control, product_id, counter = struct.unpack_from("<HHB", data)
    if frame_control & _MESH:
        raise DecodeError("MiBeacon mesh frames are not scale frames")
    position = 5
    embedded_mac = None
    if frame_control & _MAC_INCLUDED:
        if len(data) < position + 6:
            raise DecodeError("MiBeacon frame says it carries a MAC but is too short for one")
        embedded_mac = ":".join(f"{byte:02X}" for byte in reversed(data[position:position + 6]))
        position += 6
    if frame_control & _CAPABILITY_INCLUDED:
        if len(data) < position + 1:
            raise DecodeError("MiBeacon frame says it carries a capability byte but ends before it")
        capability = data[position]
        position += 2 if capability & _IO_CAPABILITY else 1
    return Header(frame_control, frame_control >> 12, product_id, counter, embedded_mac, position)


def decrypt(data: bytes, header: Header, mac: str, key: bytes) -> bytes:
    """AES-128-CCM, 4-byte MIC; nonce = MAC reversed ‖ product id ‖ counter ‖ 3-byte ext counter."""
    if len(data) < header.objects_at + 7:
        raise DecodeError("encrypted MiBeacon frame is too short for its ext counter and MIC")
    # cryptography (OpenSSL, ~7 MB) is loaded with the first encrypted frame, not by every server.
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM

    nonce = bytes.fromhex(mac.replace(":", ""))[::-1] + data[2:5] + data[-7:-4]
    try:
        return AESCCM(key, tag_length=4).decrypt(nonce, data[header.objects_at:-7] + data[-4:], AAD)
    except InvalidTag:
        raise BindKeyError(mac) from None


def objects(plaintext: bytes) -> list[tuple[int, bytes]]:
    """`[id u16 LE][len u8][value]` until the end; a length that overruns the data is an error."""
    found = []
    position = 0
    while position < len(plaintext):
        if position + 3 > len(plaintext):
            raise DecodeError(f"MiBeacon object header truncated at byte {position}")
        object_id, length = struct.unpack_from("<HB", plaintext, position)
        position += 3
        if position + length > len(plaintext):
            raise DecodeError(f"MiBeacon object 0x{object_id:04X} says {length} bytes, "
                              f"{len(plaintext) - position} remain")
        found.append((object_id, plaintext[position:position + length]))
        position += length
    return found


def _s400(model: str, counter: int, value: bytes) -> S400Packet:
    if len(value) != 9:
        raise DecodeError(f"S400 object 0x6E16 is 9 bytes, got {len(value)}")
    profile_id, packed, timestamp = struct.unpack("<BII", value)
    weight = packed & 0x7FF
    hr_raw = (packed >> 11) & 0x7F
    impedance = packed >> 18
    return S400Packet(
        model=model, counter=counter, profile_id=profile_id, packed=packed, timestamp=timestamp,
        weight_kg=weight / 10 if weight else None,
        heart_rate_bpm=float(hr_raw + 50) if 0 < hr_raw < HR_NOT_MEASURED else None,
        impedance_ohm=impedance / 10 if impedance else None,
    )


def _s200(model: str, counter: int, value: bytes) -> S200Packet:
    if len(value) != 9:
        raise DecodeError(f"S200 object 0x4E16 is 9 bytes, got {len(value)}")
    profile_id, weight, timestamp = struct.unpack("<BII", value)
    return S200Packet(model=model, counter=counter, profile_id=profile_id,
                      weight_kg=weight / 100 if weight else None, timestamp=timestamp)


def decode(data: bytes, mac: str, key: bytes | None) -> list[MiBeaconResult]:
    """The scale packets in one 0xFE95 service-data payload; [] for a non-scale product.

    `mac` is the advertiser's address (upper-case colon form): it is part of the nonce, and a
    measurement frame embedding a different one is refused, as a relayed or spoofed frame would be."""
    header = parse_header(data)
    model = SCALE_PRODUCTS.get(header.product_id)
    if model is None:
        return []
    if not header.has_objects:
        return [Idle(model, header.product_id)]
    if header.embedded_mac is not None and header.embedded_mac != mac:
        # Only a frame with a measurement is refused: it would be filed under the wrong scale.
        raise DecodeError(f"MiBeacon frame names {header.embedded_mac} but was sent by {mac}")
    if header.encrypted:
        if header.version < 4:
            raise DecodeError(f"MiBeacon v{header.version} legacy encryption is not used by scales")
        if key is None:
            raise MissingBindKey(mac)
        plaintext = decrypt(data, header, mac, key)
    else:
        plaintext = data[header.objects_at:]
    results: list[MiBeaconResult] = []
    for object_id, value in objects(plaintext):
        if object_id == OBJECT_S400 and header.product_id in S400_PRODUCTS:
            results.append(_s400(model, header.counter, value))
        elif object_id == OBJECT_S200 and header.product_id in S200_PRODUCTS:
            results.append(_s200(model, header.counter, value))
    return results or [Idle(model, header.product_id)]
