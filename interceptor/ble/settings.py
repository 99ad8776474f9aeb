"""The `[ble]` section of the config: Bluetooth scales, their bind keys, the gateway's token, MQTT.

```toml
[ble]
token = "a long random string"          # the gateway's bearer token (same on the gateway)

[ble.devices."8C:D0:B2:F6:BE:EF"]       # one table per scale, by MAC
bind_key = "0x07 28 97 4d 65 7a 4b 60 96 4c 1b 16 77 f3 5f 7c"   # S400/S200 only
model = "S400 bathroom"
profiles = { 1 = "anna", 2 = "ben" }    # S400 profile id → person slug

[ble.mqtt]                              # OpenMQTTGateway / Theengs Gateway raw frames
host = "127.0.0.1"
topic = "home/+/BTtoMQTT/#"
```

Keys, token and password are `SecretStr`: `config check`, logs and error messages show stars. The
server re-reads this section when the config file changes (see interceptor/ble/service.py), so a
new bind key takes effect on the next frame without a restart.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

_MAC = re.compile(r"^([0-9A-F]{2})" + r"[:-]?([0-9A-F]{2})" * 5 + "$")
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def parse_bind_key(text: str) -> bytes:
    """What users paste: `0x` prefix, any case, spaces, colons or dashes between bytes. The error
    never repeats the key: it says what is wrong with it, not what it is."""
    cleaned = re.sub(r"[\s:_-]", "", text).lower().removeprefix("0x")
    if not re.fullmatch(r"[0-9a-f]*", cleaned):
        raise ValueError("a bind key is 16 bytes written in hex (32 digits 0-9, a-f); this one has other characters")
    if len(cleaned) % 2:
        raise ValueError(f"a bind key is 16 bytes (32 hex digits); this one has an odd number of digits "
                         f"({len(cleaned)})")
    if len(cleaned) != 32:
        raise ValueError(f"a bind key is 16 bytes (32 hex digits); this one is {len(cleaned) // 2} bytes")
    return bytes.fromhex(cleaned)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BleDevice(_Section):
    bind_key: SecretStr | None = Field(
        default=None, description="S400/S200: the 16-byte key from the Xiaomi cloud; the Mi Scales need none",
    )
    model: str | None = Field(default=None, description="what to call it; the decoded model otherwise")
    profiles: dict[int, str] = Field(default_factory=dict, description="S400 profile id → person slug")

    @field_validator("bind_key", mode="before")
    @classmethod
    def _bind_key(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return SecretStr(parse_bind_key(value).hex())
        return value

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, profiles: dict[int, str]) -> dict[int, str]:
        for profile_id, slug in profiles.items():
            if not 0 <= profile_id <= 255:
                raise ValueError(f"profile id {profile_id} is out of range: the scale sends 0-255")
            if not _SLUG.fullmatch(slug):
                raise ValueError(f"profile {profile_id}: {slug!r} is not a person slug (e.g. 'anna')")
        return profiles

    @property
    def key_bytes(self) -> bytes | None:
        return None if self.bind_key is None else bytes.fromhex(self.bind_key.get_secret_value())


class MqttSettings(_Section):
    """A broker where OpenMQTTGateway or Theengs Gateway publish raw advertisements as JSON."""

    host: str = Field(min_length=1, description="broker host, e.g. '127.0.0.1'")
    port: int = Field(default=1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    topic: str = Field(default="home/+/BTtoMQTT/#", min_length=1, description="where the gateways publish")
    client_id: str = Field(default="scale-interceptor", min_length=1, max_length=64)


class BleSettings(_Section):
    token: SecretStr | None = Field(
        default=None, min_length=16,
        description="bearer token the gateway sends; without it POST /api/v1/ble/frames refuses everything",
    )
    devices: dict[str, BleDevice] = Field(default_factory=dict, description="keyed by MAC address")
    mqtt: MqttSettings | None = None
    gateway_name: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="the name `interceptor gateway` gives itself on the server's Devices page (default: the host name)",
    )

    @field_validator("devices", mode="before")
    @classmethod
    def _macs(cls, devices: object) -> object:
        if not isinstance(devices, dict):
            return devices
        normalised: dict[str, object] = {}
        for key, device in devices.items():
            match = _MAC.match(str(key).strip().upper())
            if match is None:
                raise ValueError(f"{key!r} is not a MAC address; write e.g. '8C:D0:B2:F6:BE:EF'")
            normalised[":".join(match.groups())] = device
        return normalised

    def device(self, mac: str) -> BleDevice | None:
        return self.devices.get(mac)

    def bind_key(self, mac: str) -> bytes | None:
        device = self.devices.get(mac)
        return None if device is None else device.key_bytes
