"""Who stood on a Bluetooth scale: the S400/S200 profile id, through the device's `profiles` map."""

from __future__ import annotations

from interceptor.ble.frames import SOURCE
from interceptor.ble.settings import BleSettings
from interceptor.model import Reading


def ble_user(reading: Reading, ble_settings: BleSettings) -> str | None:
    """The person slug for the reading's profile id, or None (then weight proximity may decide)."""
    if reading.source != SOURCE or reading.device_user_id is None:
        return None
    device = ble_settings.device(reading.device_id)
    if device is None or not reading.device_user_id.isdigit():
        return None
    return device.profiles.get(int(reading.device_user_id))
