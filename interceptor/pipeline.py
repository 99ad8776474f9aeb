"""The only way into the journal: assign a person, compute composition, write durably.

Sources call `ingest` and acknowledge their device only after it returned: by then the measurement
is committed with fsync. Several readings from one request go in one transaction, so a refused or
failed request leaves nothing half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from interceptor.config import Config
from interceptor.model import METRIC_UNITS, Measurement, Metric, Reading
from interceptor.store.journal import Journal, NewMeasurement
from interceptor.users import assign_user

log = logging.getLogger(__name__)


def vendor_metrics(reading: Reading) -> dict[str, Metric]:
    """Values the device's vendor computed, passed through under their own label."""
    return {
        name: Metric(value=value, unit=METRIC_UNITS[name], method="vendor", confidence="vendor")
        for name, value in reading.vendor_metrics.items()
    }


class Pipeline:
    def __init__(self, journal: Journal, config: Config) -> None:
        self.journal = journal
        self.config = config

    def ingest(self, reading: Reading) -> Measurement:
        return self.ingest_many([reading])[0]

    def ingest_many(self, readings: Sequence[Reading]) -> list[Measurement]:
        """Durable on return, all or nothing; a re-sent weigh-in returns the stored measurement."""
        items = [
            NewMeasurement(
                reading=reading,
                user=assign_user(reading, self.config.users),
                metrics=vendor_metrics(reading),
                refusals={},
            )
            for reading in readings
        ]
        stored = self.journal.insert(items)
        for result in stored:
            measurement = result.measurement
            if result.created:
                log.info(
                    "stored %s measurement %d from %s at %s for %s: %s",
                    measurement.kind, measurement.id, measurement.device_id,
                    measurement.taken_at.isoformat(), measurement.user or "nobody (unassigned)",
                    measurement.readings,
                )
            else:
                log.info("measurement %s was already stored as %d", measurement.identity, measurement.id)
        return [result.measurement for result in stored]
