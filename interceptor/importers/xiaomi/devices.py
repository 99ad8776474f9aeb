"""The account's Bluetooth scales and their bind keys, from Xiaomi Home.

Device list: `/v2/home/device_list_page` with XiaomiGateway3's payload, answering `{list: [...]}`
of `{did, name, model, mac, pid, ...}` where pid 6 is a Bluetooth device; bind key:
`/v2/device/blt_get_beaconkey` with `{did, pdid: 1}` answering `{beaconkey}` (XiaomiGateway3
`core/xiaomi_cloud.py` `get_devices`, `get_bindkey`, `core/const.py` `PID_BLE` @83b3fac). Scale model
ids are the reference's (ble-scales.md §2.1, cloud-and-formats.md §1.1). Parsing is pure and
tolerant: an entry without a model or id is logged by its keys and left out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from interceptor.ble.settings import parse_bind_key
from interceptor.config import normalise_mac

log = logging.getLogger(__name__)

DEVICE_LIST_PATH = "/v2/home/device_list_page"
DEVICE_LIST_DATA = {"getVirtualModel": True, "getHuamiDevices": 1, "get_split_device": False,
                    "support_smart_home": True}
BIND_KEY_PATH = "/v2/device/blt_get_beaconkey"
PID_BLUETOOTH = 6

# Model id → what a person calls it. S400 ids: ble-scales.md §2.1 (ms107/ms110 from an open esphome PR:
# unverified but harmless to name); S200 ms111, S800 ms116; 8-electrode ms3001 (cloud §1.1).
SCALE_MODELS: dict[str, str] = {
    "yunmai.scales.ms103": "Xiaomi Body Composition Scale S400 (MJTZC01YM, China)",
    "yunmai.scales.ms104": "Xiaomi Body Composition Scale S400 (MJTZC01YM)",
    "yunmai.scales.ms107": "Xiaomi Body Composition Scale S400 family (ms107)",
    "xiaomi.scales.ms110": "Xiaomi Body Composition Scale S400 family (ms110)",
    "xiaomi.scales.ms111": "Xiaomi Smart Scale S200 (MJTZC02YM)",
    "xiaomi.scales.ms116": "Xiaomi Body Composition Scale S800",
    "yunmai.scales.ms3001": "Xiaomi 8-Electrode Body Composition Scale (XMTZC01YM)",
}
# Scales whose history only Mi Fitness keeps (cloud §1.1: the 8-electrode scale).
MI_FITNESS_ONLY = frozenset({"yunmai.scales.ms3001"})


@dataclass(frozen=True)
class CloudDevice:
    did: str
    model: str
    name: str
    mac: str | None  # upper-case colon form, as interceptor/ble names devices
    bluetooth: bool

    @property
    def is_scale(self) -> bool:
        return self.model in SCALE_MODELS or ".scale" in self.model.lower()

    @property
    def description(self) -> str:
        return SCALE_MODELS.get(self.model, self.model)


def ble_mac(text: object) -> str | None:
    """The MAC as [ble.devices] keys and BLE readings write it: upper case with colons."""
    mac = normalise_mac(str(text)) if text is not None else None
    return mac.upper() if mac else None


def parse_device_list(result: Any) -> list[CloudDevice]:
    entries = result.get("list") if isinstance(result, dict) else None
    if not isinstance(entries, list):
        log.warning("xiaomi: the device list answer has no list (%s)",
                    ", ".join(sorted(result)) if isinstance(result, dict) else type(result).__name__)
        return []
    if isinstance(result, dict) and result.get("has_more"):
        log.warning("xiaomi: the device list says it has more pages; only the first was read")
    devices = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry.get("did") or not entry.get("model"):
            log.info("xiaomi: skipped a device list entry without did or model (%s)",
                     ", ".join(sorted(entry)) if isinstance(entry, dict) else type(entry).__name__)
            continue
        did = str(entry["did"])
        devices.append(CloudDevice(
            did=did, model=str(entry["model"]), name=str(entry.get("name") or entry["model"]),
            mac=ble_mac(entry.get("mac")),
            bluetooth=entry.get("pid") == PID_BLUETOOTH or str(entry.get("pid")) == str(PID_BLUETOOTH)
            or did.startswith("blt."),
        ))
    return devices


def bluetooth_scales(devices: list[CloudDevice]) -> list[CloudDevice]:
    return [device for device in devices if device.is_scale and device.bluetooth]


def parse_bind_key_answer(result: Any) -> str | None:
    """The key in the form [ble.devices] keeps (32 lower-case hex digits), or None when the cloud has
    none for this device (the Mi Scales need none). A malformed key is logged by its length only."""
    key = result.get("beaconkey") if isinstance(result, dict) else None
    if not key:
        return None
    try:
        return parse_bind_key(str(key)).hex()
    except ValueError as error:
        log.warning("xiaomi: the cloud sent a bind key that is not one: %s", error)
        return None
