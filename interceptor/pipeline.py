"""The only way into the journal: assign a person, compute composition, write durably.

Sources call `ingest` and acknowledge their device only after it returned: by then the measurement
is committed with fsync. Several readings from one request go in one transaction, so a refused or
failed request leaves nothing half-written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from interceptor.composition import Profile, compose
from interceptor.config import Config, Person
from interceptor.model import METRIC_UNITS, Measurement, Metric, Reading
from interceptor.store.journal import Journal, NewMeasurement
from interceptor.users import age_in_years, assign_user

log = logging.getLogger(__name__)


def vendor_metrics(reading: Reading) -> dict[str, Metric]:
    """Values the device's vendor computed, passed through under their own label."""
    return {
        name: Metric(value=value, unit=METRIC_UNITS[name], method="vendor", confidence="vendor")
        for name, value in reading.vendor_metrics.items()
    }


def composition_for(reading: Reading, person: Person | None) -> tuple[dict[str, Metric], dict[str, str]]:
    """Metrics and the reasons for the ones left out. Composition needs a person (sex, age at the
    weigh-in, height) and a weight; without them only the vendor's own values are kept."""
    if reading.kind != "body":
        return {}, {}
    if person is None:
        return vendor_metrics(reading), {"composition": "nobody is assigned to this weigh-in"}
    if "weight_kg" not in reading.values:
        return vendor_metrics(reading), {"composition": "the scale sent no weight with this reading"}
    profile = Profile(sex=person.sex, age_years=age_in_years(person.birth_date, reading.taken_at),
                      height_cm=person.height_cm)
    try:
        composition = compose(reading.values, profile, vendor_metrics=reading.vendor_metrics or None)
    except ValueError as error:  # a reading the formulas cannot take: keep it, say why
        return vendor_metrics(reading), {"composition": str(error)}
    return composition.metrics, composition.refusals


class Pipeline:
    def __init__(self, journal: Journal, config: Config) -> None:
        self.journal = journal
        self.config = config

    def ingest(self, reading: Reading) -> Measurement:
        return self.ingest_many([reading])[0]

    def ingest_many(self, readings: Sequence[Reading]) -> list[Measurement]:
        """Durable on return, all or nothing; a re-sent weigh-in returns the stored measurement."""
        items = []
        for reading in readings:
            user = assign_user(reading, self.config.users)
            metrics, refusals = composition_for(reading, self.config.person(user) if user else None)
            items.append(NewMeasurement(reading=reading, user=user, metrics=metrics, refusals=refusals))
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
