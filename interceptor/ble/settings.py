"""The `[ble]` section of the config: Bluetooth scales, their bind keys, and the gateway's token."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class BleSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
