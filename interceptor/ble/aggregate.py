"""From a stream of scale samples to one `Reading` per stepping-on (ble-scales.md §1.6, §2.5, §8).

Sans-I/O: every call gets the frame (with the time the receiver heard it) and `now`, the wall clock
of the caller. Two clocks, because frames may arrive late and in bursts (a gateway emptying its spool
after an outage): a pending weigh-in times out when *later frames* show that its partner is overdue,
or when nothing has touched it for the same time on the wall clock, never because a replay is slow.

* Mi Scale (V1/V2): frames that are stabilized, not removed and non-zero open a weigh-in. V1 is
  final at once; V2 waits for the frame with impedance, and gives up (weight only) on a removed
  frame or a timeout, the "stepped off before BIA" case. After the person steps off, the scale keeps
  advertising its result with the removed bit set (a "late" frame, `…02a6…`, `…02a4…`, V1 `a2…`).
  A stable frame heard before it wins. When nothing earlier was heard, the late frame is the
  weigh-in, once LATE_SETTLE_S passed without the scale showing someone on it: a scale that wakes
  re-advertises its previous result first (ble_monitor issue #366), and the live frames that follow
  at once unmask it. A late frame matching the last weigh-in of that scale is never a new one,
  however much later it comes, and one whose set clock is off by more than CLOCK_TOLERANCE_S is a
  stale re-advertisement too.
* S400: the weight packet and the impedance packet share (MAC, profile id, scale timestamp); the
  pair is final when both are there, on a weight-only "socks" packet, on a stepping-off packet, or
  on a timeout. The S200 sends one packet.
* The same frame repeated for seconds is one weigh-in: a finished weigh-in is remembered until
  `repeat_window` seconds after the last time it was heard. A genuinely repeated weigh-in carries a
  new scale timestamp (S400) or comes after the window (Mi Scale), and is another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo

from interceptor.ble.decode import Sample
from interceptor.ble.frames import SOURCE, Frame
from interceptor.ble.mibeacon import S200Packet, S400Packet
from interceptor.ble.miscale import MiScaleSample
from interceptor.model import Reading

log = logging.getLogger(__name__)

PAIR_TIMEOUT_S = 10.0  # openScale's S400Aggregator waits 10 s for the second packet (reference §2.5)
IMPEDANCE_WAIT_S = 15.0  # Mi Scale 2: BIA follows stabilization within a few seconds
LATE_SETTLE_S = 5.0  # a waking scale's live frames follow its re-advertised old result within a second or two
REPEAT_WINDOW_S = 30.0  # export2garmin's duplicate guard (reference §7)
CLOCK_TOLERANCE_S = 1200.0  # export2garmin's miscale_time_unsync (reference §1.4)
MIN_PLAUSIBLE_YEAR = 2000  # unset scale clocks say 1970 (reference §8.5)
MAX_PENDING = 1024  # hostile input cannot grow memory without bound

_Key = tuple[str, ...]


@dataclass(slots=True)
class _Pending:
    """A weigh-in that has begun but may still get a better frame."""

    mac: str
    first: Frame  # the first frame of it: its time is the reception time of the weigh-in
    deadline: float  # frame time after which it is complete anyway
    touched: float  # wall time it last changed
    signatures: set[_Key] = field(default_factory=set)  # what repeats of it look like, once finished
    mi: MiScaleSample | None = None
    late_only: bool = False  # opened by a late frame: nothing of the weigh-in was heard before
    with_weight: S400Packet | None = None
    without_weight: S400Packet | None = None


@dataclass
class Aggregator:
    zone: tzinfo = UTC  # the household's: Mi Scale clocks keep local time without a zone
    pair_timeout: float = PAIR_TIMEOUT_S
    impedance_wait: float = IMPEDANCE_WAIT_S
    late_settle: float = LATE_SETTLE_S
    repeat_window: float = REPEAT_WINDOW_S
    _pending: dict[_Key, _Pending] = field(default_factory=dict)
    _done: dict[_Key, float] = field(default_factory=dict)  # finished weigh-in → frame time last heard
    _last_mi: dict[str, set[_Key]] = field(default_factory=dict)  # MAC → signatures of its last weigh-in
    _frame_clock: float = 0.0

    @property
    def pending(self) -> int:
        return len(self._pending)

    def feed(self, frame: Frame, samples: list[Sample], now: float) -> list[Reading]:
        """The weigh-ins these samples complete (usually none)."""
        self._frame_clock = max(self._frame_clock, frame.time)
        readings: list[Reading] = []
        for sample in samples:
            if isinstance(sample, MiScaleSample):
                readings.extend(self._mi(frame, sample, now))
            elif isinstance(sample, S400Packet):
                readings.extend(self._s400(frame, sample, now))
            elif isinstance(sample, S200Packet):
                readings.extend(self._s200(frame, sample))
        readings.extend(self.flush(now))
        return readings

    def flush(self, now: float) -> list[Reading]:
        """Complete the weigh-ins that waited long enough; forget finished ones past the window."""
        due = [key for key, item in self._pending.items()
               if self._frame_clock >= item.deadline or now - item.touched >= item.deadline - item.first.time]
        readings = [reading for key in due if (reading := self._finish(key)) is not None]
        horizon = self._frame_clock - self.repeat_window
        for key in [key for key, last in self._done.items() if last < horizon]:
            del self._done[key]
        return readings

    def flush_all(self) -> list[Reading]:
        """Everything pending, now (shutdown)."""
        return [reading for key in list(self._pending) if (reading := self._finish(key)) is not None]

    # -- Mi Scale -------------------------------------------------------------------------------

    def _mi(self, frame: Frame, sample: MiScaleSample, now: float) -> list[Reading]:
        key: _Key = ("mi", frame.mac)
        signature: _Key = ("mi-done", frame.mac, str(sample.weight_raw), sample.unit, str(sample.scale_time))
        pending = self._pending.get(key)
        if (pending is not None and pending.late_only and signature not in pending.signatures
                and (sample.live or sample.late)):
            # Somebody is on the scale, or another result follows: the late frame before was the
            # waking scale's old result.
            log.info("ble: %s re-advertised an earlier result before a new weigh-in; not a weigh-in", frame.mac)
            del self._pending[key]
            pending = None
        if sample.late:
            return self._mi_late(key, signature, frame, sample, now)
        if sample.removed or sample.weight_raw == 0:
            return self._finish_if_pending(key) if pending is not None and not pending.late_only else []
        if not sample.final:
            return []
        if self._repeat(signature, frame):
            return []
        if pending is None:
            if not self._room(frame):
                return []
            pending = self._pending[key] = _Pending(frame.mac, frame, frame.time + self.impedance_wait, now)
        pending.mi = sample
        pending.signatures.add(signature)
        pending.touched = now
        if sample.version == 1 or sample.impedance_ohm is not None:
            return self._finish_if_pending(key)
        return []

    def _mi_late(self, key: _Key, signature: _Key, frame: Frame, sample: MiScaleSample, now: float) -> list[Reading]:
        pending = self._pending.get(key)
        if pending is not None and pending.mi is not None:
            # What was heard first wins; a late frame of the same measurement can only bring the
            # impedance that BIA finished while nobody was listening.
            if signature in pending.signatures and pending.mi.impedance_ohm is None:
                pending.mi = replace(pending.mi, impedance_ohm=sample.impedance_ohm)
            if pending.late_only:
                pending.touched = now
                return []
            return self._finish_if_pending(key)
        if signature in self._last_mi.get(frame.mac, ()) or self._repeat(signature, frame):
            return []
        if self._stale(sample, frame):
            log.info("ble: %s re-advertises a weigh-in of %s (its clock), heard at %s; not a new weigh-in",
                     frame.mac, sample.scale_time, frame.received_at.isoformat(timespec="seconds"))
            return []
        if self._room(frame):
            self._pending[key] = _Pending(frame.mac, frame, frame.time + self.late_settle, now, {signature},
                                          mi=sample, late_only=True)
        return []

    def _stale(self, sample: MiScaleSample, frame: Frame) -> bool:
        """A late frame whose set clock puts its weigh-in long before it was heard: the scale woke and
        re-advertised an old result (ble_monitor issue #366). An unset clock (1970) cannot tell."""
        scale = sample.scale_time
        if scale is None or scale.year < MIN_PLAUSIBLE_YEAR:
            return False
        return abs(scale.replace(tzinfo=self.zone).timestamp() - frame.time) > CLOCK_TOLERANCE_S

    # -- S400 / S200 ----------------------------------------------------------------------------

    def _s400(self, frame: Frame, packet: S400Packet, now: float) -> list[Reading]:
        key: _Key = ("s400", frame.mac, str(packet.profile_id), str(packet.timestamp))
        if self._repeat(key, frame):
            return []
        pending = self._pending.get(key)
        if packet.empty:  # stepped off: whatever arrived is all there will be
            return self._finish_if_pending(key)
        if pending is None:
            if not self._room(frame):
                return []
            pending = self._pending[key] = _Pending(frame.mac, frame, frame.time + self.pair_timeout, now, {key})
        pending.touched = now
        if packet.weight_kg is not None:
            pending.with_weight = packet
        else:
            pending.without_weight = packet
        if packet.socks or (pending.with_weight is not None and pending.without_weight is not None):
            return self._finish_if_pending(key)
        return []

    def _s200(self, frame: Frame, packet: S200Packet) -> list[Reading]:
        key: _Key = ("s200", frame.mac, str(packet.profile_id), str(packet.timestamp))
        if packet.weight_kg is None or self._repeat(key, frame):
            return []
        self._done[key] = frame.time
        return [self._reading(frame.mac, packet.model, frame, self._unix_time(packet.timestamp, frame),
                              {"weight_kg": packet.weight_kg}, str(packet.profile_id), {})]

    # -- shared ---------------------------------------------------------------------------------

    def _repeat(self, key: _Key, frame: Frame) -> bool:
        """True for a weigh-in already finished and heard again within the window (refreshes it)."""
        last = self._done.get(key)
        if last is not None and frame.time - last <= self.repeat_window:
            self._done[key] = max(last, frame.time)
            return True
        return False

    def _room(self, frame: Frame) -> bool:
        if len(self._pending) < MAX_PENDING:
            return True
        log.warning("ble: %d weigh-ins pending at once; ignoring a frame from %s", MAX_PENDING, frame.mac)
        return False

    def _finish_if_pending(self, key: _Key) -> list[Reading]:
        finished = self._finish(key) if key in self._pending else None
        return [finished] if finished else []

    def _finish(self, key: _Key) -> Reading | None:
        pending = self._pending.pop(key)
        for signature in pending.signatures:
            self._done[signature] = self._frame_clock
        if pending.mi is not None:
            self._remember_last(pending)
            return self._mi_reading(pending, pending.mi)
        return self._s400_reading(pending)

    def _remember_last(self, pending: _Pending) -> None:
        """What the scale will re-advertise when it next wakes, kept for as long as it is its last."""
        self._last_mi.pop(pending.mac, None)
        if len(self._last_mi) >= MAX_PENDING:  # hostile input cannot grow memory: forget the oldest scale
            del self._last_mi[next(iter(self._last_mi))]
        self._last_mi[pending.mac] = set(pending.signatures)

    def _mi_reading(self, pending: _Pending, sample: MiScaleSample) -> Reading:
        values = {"weight_kg": sample.weight_kg}
        if sample.impedance_ohm is not None:
            values["impedance_ohm"] = sample.impedance_ohm
        raw = {"ble_object_mode": 1.0} if sample.object_mode else {}
        taken_at = self._local_time(sample.scale_time, pending.first)
        return self._reading(pending.mac, sample.model, pending.first, taken_at, values, None, raw)

    def _s400_reading(self, pending: _Pending) -> Reading | None:
        weighed, other = pending.with_weight, pending.without_weight
        if weighed is None or weighed.weight_kg is None:
            log.info("ble: %s sent an impedance packet but no weight packet; nothing to store", pending.mac)
            return None
        values: dict[str, float] = {"weight_kg": weighed.weight_kg}
        raw: dict[str, float] = {"ble_s400_packed_with_weight": float(weighed.packed)}
        if weighed.heart_rate_bpm is not None:
            values["heart_rate_bpm"] = weighed.heart_rate_bpm
        if weighed.impedance_ohm is not None:
            raw["ble_impedance_with_weight_ohm"] = weighed.impedance_ohm
            # Alone, named by its packet: the with-weight band is the ~50 kHz one, the larger in
            # every public frame and pairing (docs/composition.md, "Which impedance ...").
            values["impedance_low_ohm"] = weighed.impedance_ohm
        if other is not None and other.impedance_ohm is not None:
            raw["ble_impedance_without_weight_ohm"] = other.impedance_ohm
            raw["ble_s400_packed_without_weight"] = float(other.packed)
            if weighed.impedance_ohm is not None:
                # DESIGN: both are named by value, the larger being the lower frequency.
                values["impedance_low_ohm"] = max(weighed.impedance_ohm, other.impedance_ohm)
                values["impedance_high_ohm"] = min(weighed.impedance_ohm, other.impedance_ohm)
        taken_at = self._unix_time(weighed.timestamp, pending.first)
        return self._reading(pending.mac, weighed.model, pending.first, taken_at, values, str(weighed.profile_id), raw)

    def _local_time(self, scale_time: datetime | None, frame: Frame) -> datetime:
        if scale_time is None or scale_time.year < MIN_PLAUSIBLE_YEAR:
            return frame.received_at
        return self._plausible(scale_time.replace(tzinfo=self.zone).astimezone(UTC), frame)

    def _unix_time(self, timestamp: int, frame: Frame) -> datetime:
        return self._plausible(datetime.fromtimestamp(timestamp, tz=UTC), frame)

    @staticmethod
    def _plausible(scale: datetime, frame: Frame) -> datetime:
        """The scale's clock when it agrees with the receiver's: then two receivers that heard the
        same weigh-in give it the same time, hence the same identity in the journal."""
        if scale.year >= MIN_PLAUSIBLE_YEAR and abs(scale.timestamp() - frame.time) <= CLOCK_TOLERANCE_S:
            return scale
        return frame.received_at

    @staticmethod
    def _reading(mac: str, model: str, first: Frame, taken_at: datetime, values: dict[str, float],
                 user: str | None, raw: dict[str, float]) -> Reading:
        return Reading(source=SOURCE, device_id=mac, device_model=model, taken_at=taken_at,
                       received_at=first.received_at, device_user_id=user, values=values, raw=raw)
