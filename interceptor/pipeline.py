"""The only way into the journal: assign a person, compute composition, write durably.

Sources call `ingest` and acknowledge their device only after it returned: by then the measurement
is committed with fsync. Several readings from one request go in one transaction, so a refused or
failed request leaves nothing half-written. Later decisions about a stored weigh-in (assigned by
hand, recomputed after a profile change, calibrated) go through here too, so every sink gets them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from interceptor.composition import Options, Profile, calibration_offset, compose
from interceptor.config import Config, Person
from interceptor.model import METRIC_UNITS, Measurement, Metric, Reading
from interceptor.store.journal import Journal, NewMeasurement
from interceptor.users import RECENT_WEIGHINS, Assignment, age_in_years, assign_user

log = logging.getLogger(__name__)

CALIBRATION_KEY = "calibration.{slug}"


def vendor_metrics(reading: Reading) -> dict[str, Metric]:
    """Values the device's vendor computed, passed through under their own label."""
    return {
        name: Metric(value=value, unit=METRIC_UNITS[name], method="vendor", confidence="vendor")
        for name, value in reading.vendor_metrics.items()
    }


@dataclass(frozen=True)
class Calibration:
    """A person's reference body fat (vendor app, DEXA) and the offset it implies for our numbers."""

    since: date
    reference_fat_pct: float
    offset_pct: float

    def to_text(self) -> str:
        return json.dumps({"since": self.since.isoformat(), "reference_fat_pct": self.reference_fat_pct,
                           "offset_pct": self.offset_pct})

    @classmethod
    def from_text(cls, text: str) -> Calibration:
        data = json.loads(text)
        return cls(date.fromisoformat(data["since"]), float(data["reference_fat_pct"]), float(data["offset_pct"]))


def profile_at(person: Person, moment: datetime) -> Profile:
    return Profile(sex=person.sex, age_years=age_in_years(person.birth_date, moment), height_cm=person.height_cm)


def composition_for(
    reading: Reading, person: Person | None, calibration: Calibration | None = None
) -> tuple[dict[str, Metric], dict[str, str]]:
    """Metrics and the reasons for the ones left out. Composition needs a person (sex, age at the
    weigh-in, height) and a weight; without them only the vendor's own values are kept."""
    if reading.kind != "body":
        return {}, {}
    if person is None:
        return vendor_metrics(reading), {"composition": "nobody is assigned to this weigh-in"}
    if "weight_kg" not in reading.values:
        return vendor_metrics(reading), {"composition": "the scale sent no weight with this reading"}
    options = None
    if calibration is not None and reading.taken_at.date() >= calibration.since:
        options = Options(fat_offset_pct=calibration.offset_pct)
    try:
        composition = compose(reading.values, profile_at(person, reading.taken_at),
                              vendor_metrics=reading.vendor_metrics or None, options=options)
    except ValueError as error:  # a reading the formulas cannot take: keep it, say why
        return vendor_metrics(reading), {"composition": str(error)}
    return composition.metrics, composition.refusals


class Pipeline:
    def __init__(self, journal: Journal, config: Config) -> None:
        self.journal = journal
        self.config = config

    def calibration(self, slug: str) -> Calibration | None:
        text = self.journal.meta_get(CALIBRATION_KEY.format(slug=slug))
        return Calibration.from_text(text) if text else None

    def _decide(self, reading: Reading, assignment: Assignment) -> NewMeasurement:
        person = self.config.person(assignment.user) if assignment.user else None
        calibration = self.calibration(person.slug) if person else None
        metrics, refusals = composition_for(reading, person, calibration)
        return NewMeasurement(reading=reading, user=assignment.user, metrics=metrics, refusals=refusals,
                              assignment=assignment.how)

    def ingest(self, reading: Reading) -> Measurement:
        return self.ingest_many([reading])[0]

    def ingest_many(self, readings: Sequence[Reading]) -> list[Measurement]:
        """Durable on return, all or nothing; a re-sent weigh-in returns the stored measurement."""
        items = []
        for reading in readings:
            assignment = assign_user(
                reading, self.config.users, lambda slug: self.journal.recent_weights(slug, RECENT_WEIGHINS),
                self.config.household.assign_tolerance_kg, self.config.ble,
            )
            items.append(self._decide(reading, assignment))
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

    # -- later decisions about stored weigh-ins ---------------------------------------------------

    def _reading(self, measurement_id: int) -> Reading:
        reading = self.journal.reading_of(measurement_id)
        if reading is None:
            raise LookupError(f"no measurement {measurement_id}")
        if reading.kind != "body":
            raise LookupError(f"measurement {measurement_id} is a {reading.kind} reading, not a weigh-in")
        return reading

    def assign(self, measurement_id: int, slug: str | None) -> Measurement:
        """Attribute a weigh-in to a person by hand (None: to nobody), recompute, re-deliver."""
        if slug is not None and self.config.person(slug) is None:
            raise LookupError(f"{slug!r} is not in the household")
        assignment = Assignment(slug, "manual" if slug else "none")
        return self.journal.revise(measurement_id, self._decide(self._reading(measurement_id), assignment))

    def recompute(self, slug: str, since: datetime | None = None) -> int:
        """Recompute a person's weigh-ins (after a change of height, birth date or calibration)."""
        if self.config.person(slug) is None:
            raise LookupError(f"{slug!r} is not in the household")
        stored = self.journal.measurements(user=slug, since=since, kind="body")
        for measurement in stored:  # keep how each was attributed: by hand stays by hand
            assignment = Assignment(slug, measurement.assignment)
            self.journal.revise(measurement.id, self._decide(self._reading(measurement.id), assignment))
        return len(stored)

    def calibrate(self, slug: str, reference_fat_pct: float, on: date | None = None) -> Calibration:
        """Take the person's weigh-in of `on` (default: their latest) as read by the vendor app or a DEXA
        scan; weigh-ins from that day on are offset so that one reads `reference_fat_pct`."""
        person = self.config.person(slug)
        if person is None:
            raise LookupError(f"{slug!r} is not in the household")
        candidates = [m for m in self.journal.measurements(user=slug, kind="body") if "weight_kg" in m.readings
                      and (on is None or m.taken_at.astimezone(self.config.household.zone).date() == on)]
        if not candidates:
            when = f"on {on.isoformat()}" if on else "yet"
            raise LookupError(f"{slug} has no weigh-in {when} to calibrate against")
        reference = candidates[-1]
        reading = self._reading(reference.id)
        uncalibrated = compose(reading.values, profile_at(person, reading.taken_at),
                               vendor_metrics=reading.vendor_metrics or None)
        offset = calibration_offset(reference_fat_pct, uncalibrated)
        calibration = Calibration(reference.taken_at.date(), reference_fat_pct, offset)
        self.journal.meta_set(CALIBRATION_KEY.format(slug=slug), calibration.to_text())
        return calibration
