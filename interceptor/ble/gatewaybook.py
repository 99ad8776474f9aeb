"""The gateways heard by this server, as devices in the journal, written at a bounded rate.

A gateway posts a batch a second and more: the book keeps the news in memory and writes it as
bookkeeping (`Journal.write_later`, no fsync of its own) at most once per `WRITE_EVERY_S` per gateway,
the last news of a burst on the next `flush`. Each scale a gateway heard keeps the signal it was
heard at. A gateway's firmware goes to the device's history (and so to the sinks: Home Assistant's
"last seen") when it is first heard, when its version changes and every `REPORT_EVERY_S`, not with
every write. At most `MAX_GATEWAYS` gateways are kept: a stranger with the token cannot fill the
table, and a new gateway takes the place of the one silent longest.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from interceptor.ble.gateways import SOURCE, GatewayId
from interceptor.model import utc_from_unix
from interceptor.store.journal import Journal, Tx

log = logging.getLogger(__name__)

MAX_GATEWAYS = 64
MAX_SIGNALS = 256  # scales' signals one gateway's pending write may carry
WRITE_EVERY_S = 5.0
REPORT_EVERY_S = 15 * 60.0


@dataclass
class _Gateway:
    """One gateway's news since its last write."""

    identity: GatewayId
    address: str | None
    last_seen: float
    frames: int = 0  # delivered since the last write
    signals: dict[str, int] = field(default_factory=dict)  # scale MAC → RSSI, since the last write
    written: float = -math.inf
    reported: float = -math.inf
    reported_version: str | None = None
    pending: bool = True  # news not yet written


class GatewayBook:
    """The gateways heard by this server, written to the journal at a bounded rate."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._gateways: dict[str, _Gateway] = {}

    def heard(self, identity: GatewayId, address: str | None, frames: int, signals: Mapping[str, int],
              now: float) -> None:
        """`frames` delivered by `identity` at `now`; `signals`: the RSSI of each scale in them."""
        gateway = self._gateways.get(identity.device_id) or self._admit(identity, address, now)
        gateway.identity = identity  # a new version is reported on the next write
        gateway.address = address or gateway.address
        gateway.last_seen = max(gateway.last_seen, now)
        gateway.frames += frames
        for mac, rssi in signals.items():
            if mac in gateway.signals or len(gateway.signals) < MAX_SIGNALS:
                gateway.signals[mac] = rssi
        gateway.pending = True
        self._write_if_due(gateway, now)

    def flush(self, now: float) -> None:
        """Write the news each gateway holds once its pause is over (the end of a burst)."""
        for gateway in self._gateways.values():
            self._write_if_due(gateway, now)

    def flush_all(self, now: float) -> None:
        """Write every gateway's news, paused or not: the server stops, and the book with it."""
        for gateway in self._gateways.values():
            self._write_if_due(gateway, now, pause=0.0)

    def _admit(self, identity: GatewayId, address: str | None, now: float) -> _Gateway:
        """A gateway new to this process; the one silent longest gives way when the book is full."""
        if len(self._gateways) >= MAX_GATEWAYS:
            oldest = min(self._gateways.values(), key=lambda gateway: gateway.last_seen)
            del self._gateways[oldest.identity.device_id]
        gateway = self._gateways[identity.device_id] = _Gateway(identity, address, now)
        return gateway

    def _write_if_due(self, gateway: _Gateway, now: float, pause: float = WRITE_EVERY_S) -> None:
        if not gateway.pending or now - gateway.written < pause:
            return
        identity = gateway.identity
        report = (now - gateway.reported >= REPORT_EVERY_S or gateway.reported_version != identity.version)
        job = _Write(identity, gateway.address, gateway.last_seen, gateway.frames, dict(gateway.signals), report)
        self.journal.write_later(job, f"gateway {identity.name}")
        gateway.frames, gateway.signals, gateway.pending, gateway.written = 0, {}, False, now
        if report:
            gateway.reported, gateway.reported_version = now, identity.version


@dataclass(frozen=True)
class _Write:
    """One gateway's news as a writer job: the gateway device, then the signal of each scale it heard."""

    identity: GatewayId
    address: str | None
    last_seen: float
    frames: int
    signals: dict[str, int]
    report: bool  # with the firmware: a history row, and the sinks hear of it

    def __call__(self, tx: Tx) -> None:
        identity = self.identity
        if tx.device(identity.device_id) is None:
            _make_room(tx)
        seen_at = utc_from_unix(self.last_seen)
        tx.record_device(device_id=identity.device_id, source=SOURCE, seen_at=seen_at, model=identity.model)
        tx.record_radio(identity.device_id, address=self.address, frames=self.frames)
        if self.report:  # last, so the sinks' state is rendered from the radio facts just written
            tx.record_device(device_id=identity.device_id, source=SOURCE, seen_at=seen_at, firmware=identity.version,
                             report=True)
        for mac, rssi in self.signals.items():
            tx.record_radio(mac, rssi_dbm=rssi, heard_by=identity.name)


def _make_room(tx: Tx) -> None:
    """Keep at most `MAX_GATEWAYS` gateway devices: the one silent longest goes."""
    known = tx.devices(SOURCE)
    for gone in known[MAX_GATEWAYS - 1:]:
        log.warning("ble: forgetting gateway %s (last heard %s): at most %d gateways are kept",
                    gone.device_id, gone.last_seen.isoformat(), MAX_GATEWAYS)
        tx.forget_device(gone.device_id)
