"""The server side of BLE: frames from any input → decode → frame log → aggregator → pipeline.

One `BleService` per server, shared by the gateway endpoint, the MQTT subscriber and the flush
task, so a weigh-in heard by two receivers is still one weigh-in.

Hot reload: before each batch (and on each flush tick) the config file's modification time is
checked; when it changed, the file is read again and its `[ble]` section replaces the one in force
(tokens, bind keys, profiles, models). A new bind key also re-runs the frames kept in the frame log,
so a weigh-in that arrived while the key was wrong is recovered. `[ble.mqtt]` changes need a restart.
An invalid file is reported and the previous settings stay.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from interceptor.ble.aggregate import Aggregator
from interceptor.ble.decode import Sample, decode_frame
from interceptor.ble.errors import BindKeyError, DecodeError, MissingBindKey, NotThisDevice
from interceptor.ble.framelog import FrameLog
from interceptor.ble.frames import Frame
from interceptor.ble.gatewaybook import GatewayBook
from interceptor.ble.gateways import GatewayId
from interceptor.ble.mibeacon import Idle
from interceptor.ble.settings import BleSettings
from interceptor.config import Config, ConfigError, load_config
from interceptor.model import Measurement, Reading, iso_utc
from interceptor.pipeline import Pipeline
from interceptor.plausibility import Implausible

log = logging.getLogger(__name__)

REPORT_EVERY_S = 60.0  # the same problem with the same scale is logged at most once a minute
MAX_REPORTERS = 4096

Clock = Callable[[], float]


@dataclass
class Accepted:
    frames: int = 0
    scale_frames: int = 0
    new_frames: int = 0
    measurements: list[Measurement] = field(default_factory=list)
    signals: dict[str, int] = field(default_factory=dict)  # each scale's RSSI, the latest frame's

    def as_json(self) -> dict[str, object]:
        return {"frames": self.frames, "scale_frames": self.scale_frames, "new_frames": self.new_frames,
                "measurements": [measurement.id for measurement in self.measurements]}


class BleService:
    def __init__(self, config: Config, pipeline: Pipeline, *, config_path: Path | None,
                 frame_log: FrameLog, clock: Clock = time.time) -> None:
        self.config = config
        self.pipeline = pipeline
        self.config_path = config_path
        self.frame_log = frame_log
        self.clock = clock
        self.aggregator: Aggregator | None = None  # None: rebuild from the frame log before use
        self._file_version = self._stat()
        self._reported: dict[tuple[str, str], float] = {}
        self.gateways = GatewayBook(pipeline.journal)

    @property
    def settings(self) -> BleSettings:
        return self.config.ble

    # -- input ----------------------------------------------------------------------------------

    async def accept(self, frames: Sequence[Frame], now: float | None = None, *, gateway: GatewayId | None = None,
                     address: str | None = None) -> Accepted:
        """Durable on return: every scale frame is in the frame log and every weigh-in it completed
        is in the journal. `gateway` (from `address`) delivered them: it is noted as a device, after
        the weigh-ins, so the signal of a scale heard for the first time finds its device row."""
        now = self.clock() if now is None else now
        result = await self._accept(frames, now)
        if gateway is not None:
            self.gateways.heard(gateway, address, len(frames), result.signals, now)
        return result

    async def _accept(self, frames: Sequence[Frame], now: float) -> Accepted:
        self.reload_if_changed()
        result = Accepted(frames=len(frames))
        kept: list[tuple[Frame, list[Sample]]] = []
        for frame in frames:
            decoded = decode_frame(frame, self.settings.bind_key)
            if decoded is None:
                continue
            result.scale_frames += 1
            if frame.rssi is not None:
                result.signals[frame.mac] = frame.rssi
            for error in decoded.errors:
                self._report(frame, error, now)
            samples = [sample for sample in decoded.samples if not isinstance(sample, Idle)]
            if samples or any(isinstance(error, MissingBindKey | BindKeyError) for error in decoded.errors):
                kept.append((frame, samples))
        if not kept and self.aggregator is not None:
            result.measurements = await self._store(self.aggregator.flush(now))
            return result
        fresh = await self.frame_log.add([frame for frame, _ in kept], now)
        result.new_frames = sum(fresh)
        aggregator, readings = await self._aggregator(now)
        for (frame, samples), new in zip(kept, fresh, strict=True):
            if new and samples:
                readings.extend(aggregator.feed(frame, samples, now))
        readings.extend(aggregator.flush(now))
        result.measurements = await self._store(readings)
        return result

    async def tick(self, now: float | None = None) -> list[Measurement]:
        """Complete weigh-ins whose partner frame is overdue; pick up a changed config; write the
        gateways' news held back by their pause."""
        now = self.clock() if now is None else now
        self.reload_if_changed()
        self.gateways.flush(now)
        aggregator, readings = await self._aggregator(now)
        return await self._store([*readings, *aggregator.flush(now)])

    async def finish(self) -> list[Measurement]:
        """End of a finite input (a replayed file): whatever is pending is complete."""
        aggregator, readings = await self._aggregator(self.clock())
        return await self._store([*readings, *aggregator.flush_all()])

    # -- state ----------------------------------------------------------------------------------

    async def _aggregator(self, now: float) -> tuple[Aggregator, list[Reading]]:
        """The aggregator, rebuilt from the frame log when there is none (start, new key, failure).
        Weigh-ins the rebuild completes again are stored again and the journal keeps them once."""
        if self.aggregator is not None:
            return self.aggregator, []
        aggregator = Aggregator(zone=self.config.household.zone)
        readings: list[Reading] = []
        frames = await self.frame_log.recent()
        for frame in frames:
            decoded = decode_frame(frame, self.settings.bind_key)
            if decoded is not None:
                samples = [sample for sample in decoded.samples if not isinstance(sample, Idle)]
                readings.extend(aggregator.feed(frame, samples, now))
        if frames:
            log.info("ble: rebuilt weigh-in state from %d kept frame(s)", len(frames))
        self.aggregator = aggregator
        return aggregator, readings

    async def _store(self, readings: list[Reading]) -> list[Measurement]:
        """Each implausible weigh-in is dropped with a warning (its frames stay in the frame log) and
        the others are stored."""
        named = [self._with_model(reading) for reading in readings]
        while named:
            try:
                return await self.pipeline.ingest_many(named)
            except Implausible as refusal:
                self._refused(named.pop(refusal.index), refusal)
            except Exception:
                self.aggregator = None  # the frames are kept: the next call rebuilds and tries again
                raise
        return []

    def _with_model(self, reading: Reading) -> Reading:
        device = self.settings.device(reading.device_id)
        if device is None or device.model is None:
            return reading
        return reading.model_copy(update={"device_model": device.model})

    # -- config ---------------------------------------------------------------------------------

    def _stat(self) -> tuple[int, int] | None:
        """Modification time and inode: a file replaced atomically (`xiaomi devices --write-config`)
        is a new inode even when the clock did not tick between the two writes."""
        if self.config_path is None:
            return None
        try:
            found = os.stat(self.config_path)
        except OSError:
            return None
        return found.st_mtime_ns, found.st_ino

    def reload_if_changed(self) -> bool:
        version = self._stat()
        if version == self._file_version:
            return False
        self._file_version = version
        try:
            fresh = load_config(self.config_path).ble
        except ConfigError as error:  # messages from load_config never show secret values
            log.error("ble: %s changed but cannot be used; keeping the previous [ble] settings: %s",
                      self.config_path, error)
            return False
        if fresh == self.settings:
            return False
        keys_changed = {mac: device.key_bytes for mac, device in fresh.devices.items()} != {
            mac: device.key_bytes for mac, device in self.settings.devices.items()}
        self.config = self.config.model_copy(update={"ble": fresh})
        # The pipeline assigns people through [ble] profiles: it must see the same settings.
        self.pipeline.config = self.pipeline.config.model_copy(update={"ble": fresh})
        log.info("ble: reloaded [ble] from %s (%d device(s)%s)", self.config_path, len(fresh.devices),
                 "; bind keys changed, re-reading kept frames" if keys_changed else "")
        if keys_changed:
            self.aggregator = None
            self._reported.clear()
        return True

    # -- reporting ------------------------------------------------------------------------------

    def _due(self, key: tuple[str, str], now: float) -> bool:
        """True at most once a minute per (scale, kind of complaint): logs stay bounded."""
        last = self._reported.get(key)
        if last is not None and now - last < REPORT_EVERY_S:
            return False
        if len(self._reported) >= MAX_REPORTERS:
            self._reported.clear()
        self._reported[key] = now
        return True

    def _refused(self, reading: Reading, refusal: Implausible) -> None:
        if self._due((reading.device_id, f"implausible {refusal.field}"), self.clock()):
            log.warning("ble: dropped the weigh-in of %s at %s: %s (its frames stay in the frame log)",
                        reading.device_id, iso_utc(reading.taken_at), refusal)

    def _report(self, frame: Frame, error: DecodeError, now: float) -> None:
        """Bad or undecodable input is logged with what reproduces it (MAC, UUID, payload), never a
        key; the same complaint about the same scale at most once a minute."""
        if isinstance(error, NotThisDevice):
            log.debug("ble: %s: %s", frame.mac, error)
            return
        if not self._due((frame.mac, type(error).__name__), now):
            return
        payloads = " ".join(f"{uuid}:{data.hex()}" for uuid, data in frame.service_data.items())
        if isinstance(error, MissingBindKey | BindKeyError):
            log.warning("ble: %s", error)
        else:
            log.warning("ble: frame from %s not understood: %s (service data %s)", frame.mac, error, payloads)
