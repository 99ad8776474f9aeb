"""Where the gateway's frames come from: a Bluetooth adapter through bleak, or a file.

A source is anything with `frames()`, an async iterator of `Frame`s. This is the seam that lets
the gateway run and be tested on a machine without Bluetooth.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

from interceptor.ble.frames import Frame, frame_from_json, normalise_mac, normalise_uuid
from interceptor.nesting import loads_json

log = logging.getLogger(__name__)

QUEUE_SIZE = 10_000


class SourceError(Exception):
    """The source cannot start (no bleak, no adapter, unreadable file); the message says what to do."""


class FrameSource(Protocol):
    def frames(self) -> AsyncIterator[Frame]: ...


class BleakSource:
    """Continuous active scan with bleak (BlueZ on Linux), BlueZ duplicate filtering off so that a
    repeated frame is seen again (reference §5.3). bleak hands over parsed dictionaries, not raw AD
    bytes, which is all the decoders need."""

    def __init__(self, adapter: str | None = None) -> None:
        self.adapter = adapter
        self.dropped = 0

    async def frames(self) -> AsyncIterator[Frame]:
        try:
            from bleak import BleakScanner
            from bleak.exc import BleakError
        except ImportError:
            raise SourceError(f"bleak, the Bluetooth library the gateway scans with, is not installed: install it"
                              f" with `{sys.executable} -m pip install bleak` (from a clone of Scale Interceptor:"
                              " `pip install '.[gateway]'`), or use --from-file to replay a capture") from None
        queue: asyncio.Queue[Frame] = asyncio.Queue(QUEUE_SIZE)

        def heard(device: Any, advertisement: Any) -> None:
            try:
                queue.put_nowait(bleak_frame(device, advertisement, time.time()))
            except asyncio.QueueFull:
                self.dropped += 1

        bluez: dict[str, Any] = {"filters": {"DuplicateData": True}}
        if self.adapter:
            bluez["adapter"] = self.adapter
        try:
            async with BleakScanner(detection_callback=heard, scanning_mode="active", bluez=bluez):  # type: ignore[arg-type]
                log.info("gateway: scanning%s", f" on {self.adapter}" if self.adapter else "")
                while True:
                    yield await queue.get()
        except BleakError as error:
            raise SourceError(f"Bluetooth scan failed: {error} (is the adapter up? `bluetoothctl show`)") from None
        except (FileNotFoundError, ConnectionRefusedError) as error:  # no system D-Bus socket, or nobody on it
            raise SourceError(f"cannot reach BlueZ over the system D-Bus ({error.strerror or error}): install and"
                              " start it (`sudo apt-get install bluez`, then `sudo systemctl enable --now"
                              " bluetooth`), or use --from-file to replay a capture") from None
        except PermissionError as error:
            raise SourceError(f"not allowed to use BlueZ over D-Bus ({error.strerror or error}): run the gateway"
                              " in the `bluetooth` group (deploy/systemd/interceptor-gateway.service does)") from None


def bleak_frame(device: Any, advertisement: Any, now: float) -> Frame:
    """bleak's AdvertisementData → Frame. BlueZ reports the address type in the device properties."""
    details = getattr(device, "details", None)
    props = details.get("props", {}) if isinstance(details, dict) else {}
    address_type = props.get("AddressType")
    rssi = advertisement.rssi
    return Frame(
        time=now, mac=normalise_mac(device.address),
        address_type=address_type if address_type in ("public", "random") else "unknown",
        rssi=rssi if rssi is not None and -128 <= rssi <= 127 else None,
        service_data={normalise_uuid(uuid): bytes(data) for uuid, data in advertisement.service_data.items()},
        manufacturer_data={company: bytes(data) for company, data in advertisement.manufacturer_data.items()},
        name=advertisement.local_name,
    )


class FileSource:
    """Stands in for the Bluetooth adapter in tests, benchmarks and demos (no adapter exists on a
    build machine): frames from a btsnoop capture or a JSON-lines file of the gateway's own frame
    JSON. `rate` paces them (frames per second); `loop` repeats the file forever with each frame
    stamped with the time it is emitted, as a live scan would."""

    def __init__(self, path: Path, rate: float | None = None, loop: bool = False) -> None:
        self.path = path
        self.rate = rate
        self.loop = loop

    def _read(self) -> Iterator[Frame]:
        try:
            with self.path.open("rb") as stream:
                if stream.read(8) == b"btsnoop\x00":
                    from interceptor.ble import btsnoop

                    stream.seek(0)
                    yield from btsnoop.frames(stream)
                    return
                stream.seek(0)
                for number, line in enumerate(stream, 1):
                    if line.strip():
                        try:
                            yield frame_from_json(loads_json(line, "the line"))
                        except ValueError as error:
                            raise SourceError(f"{self.path}:{number}: {error}") from None
        except OSError as error:
            raise SourceError(f"cannot read {self.path}: {error.strerror or error}") from None

    async def frames(self) -> AsyncIterator[Frame]:
        started = time.monotonic()
        sent = 0
        while True:
            for frame in self._read():
                sent += 1
                if self.rate:
                    delay = started + sent / self.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif sent % 256 == 0:
                        await asyncio.sleep(0)  # let the sender run when behind
                yield replace(frame, time=time.time()) if self.loop else frame
            if not self.loop:
                return
