"""Why a frame gave no measurement. Three different answers need three different user actions:
a malformed frame (report it), no bind key (configure one), a wrong key (fetch the new one)."""

from __future__ import annotations


class DecodeError(ValueError):
    """The bytes are not a frame this decoder understands; the message says what was wrong."""


class NotThisDevice(DecodeError):
    """The UUID is shared with other products (0x181B/0x181D are Bluetooth SIG services) and the
    length says it is not a Xiaomi scale: not an error worth a warning."""


class MissingBindKey(DecodeError):
    """An encrypted scale with no key configured: the user has to add one."""

    def __init__(self, mac: str) -> None:
        super().__init__(
            f"no bind key for {mac}: this scale encrypts its weigh-ins; run `interceptor xiaomi devices "
            f'--write-config` to fetch it from your Xiaomi account into [ble.devices."{mac}"] (no restart needed)'
        )
        self.mac = mac


class BindKeyError(DecodeError):
    """The frame failed AES-CCM authentication: the key is wrong or was replaced (re-pairing,
    new batteries and new profiles all issue a new key, reference §2.5/§7)."""

    def __init__(self, mac: str) -> None:
        super().__init__(
            f"wrong or outdated bind key for {mac}: keys change when the scale is reset or re-paired; "
            f"run `interceptor xiaomi devices --write-config` to fetch the current key into "
            f'[ble.devices."{mac}"] (no restart needed)'
        )
        self.mac = mac
