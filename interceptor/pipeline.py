"""The only way into the journal: assign a person, compute composition, write durably.

Sources call `ingest` and acknowledge their device only after it returned: by then the measurement
is committed with fsync. Several readings from one request go in one transaction, so a refused or
failed request leaves nothing half-written. Later decisions about a stored weigh-in (assigned by
hand, recomputed after a profile change, calibrated) go through here too, so every sink gets them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal, NamedTuple

from interceptor import plausibility
from interceptor.composition import Options, Profile, calibration_offset, compose
from interceptor.config import Config, Person
from interceptor.model import METRIC_UNITS, Measurement, Metric, Reading
from interceptor.store import imports
from interceptor.store.imports import MergeRule
from interceptor.store.journal import FIRST, Filter, Journal, NewMeasurement, Position, Reader, Stored, Tx
from interceptor.store.measurements import GUEST, NewRow, new_row, row_reading
from interceptor.users import RECENT_WEIGHINS, Assignment, age_in_years, assign_user

log = logging.getLogger(__name__)

CALIBRATION_KEY = "calibration.{slug}"
# Weigh-ins recomputed per transaction: bounded memory, and a scale never waits long behind a recompute.
RECOMPUTE_CHUNK = 500


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


Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Imported:
    """One record of an export file or vendor cloud, as a reading, with the person the record names
    (None: decided as for a live weigh-in) and where it came from, for the import summary."""

    reading: Reading
    user: str | None
    origin: str


def calibration_texts(reader: Reader, slugs: Iterable[str]) -> dict[str, str | None]:
    """Each person's calibration as the journal stores it (None: not calibrated)."""
    return {slug: reader.meta_get(CALIBRATION_KEY.format(slug=slug)) for slug in slugs}


class Preparer:
    """Makes import records `Prepared` without the journal: composed with the calibrations given
    (`calibration_texts`, read when the import began; a person missing there has none). The writer
    checks each against the journal's, so one set meanwhile still applies."""

    def __init__(self, config: Config, calibrations: Mapping[str, str | None]) -> None:
        self.people = {person.slug: person for person in config.users}
        self.texts = dict(calibrations)
        self._parsed = {slug: Calibration.from_text(text) for slug, text in self.texts.items() if text}

    def prepare(self, item: Imported) -> Prepared:
        reading = item.reading
        weight = reading.values.get("weight_kg")
        person = self.people.get(item.user) if item.user is not None else None
        if person is None:  # the writer decides who (or keeps a slug the household does not know)
            return Prepared(new_row(reading, item.user, "import", None, None), weight, None, item.origin)
        metrics, refusals = composition_for(reading, person, self._parsed.get(person.slug))
        return Prepared(new_row(reading, person.slug, "import", metrics, refusals), weight,
                        self.texts.get(person.slug), item.origin)


class Prepared(NamedTuple):
    """An import record made ready for its writer job: its row composed for the person the record
    names, with that person's calibration as the journal held it when preparing began (the writer
    composes again if it changed since, or when the record names nobody). Prepared on the event loop,
    or in a second process while this one writes (`importers.worker`): a tuple of plain values."""

    row: NewRow
    weight_kg: float | None
    calibration: str | None  # the person's stored calibration text the composition used
    origin: str


@dataclass(frozen=True)
class ImportResult:
    origin: str  # where the record came from (file and row, cloud record)
    outcome: Literal["new", "merged", "unchanged", "skipped"]
    measurement_id: int  # 0 when skipped
    reason: str | None = None  # why it was skipped


class Pipeline:
    """Decisions about readings, run where the journal is written (the writer thread), so that two
    weigh-ins arriving together are attributed from the same, committed history."""

    def __init__(self, journal: Journal, config: Config, clock: Clock = utc_now) -> None:
        self.journal = journal
        self.config = config
        self.clock = clock  # judges how far ahead a weigh-in may be; a replay passes the capture's time
        # Each person's latest weight, for the scale's user list: kept current by every commit that
        # stores a weigh-in, so a session reply reads no disk.
        self.latest_weights: dict[str, float] = {}

    async def load(self) -> None:
        """Read what the hot path keeps in memory (at start-up, and after the household changed)."""
        slugs = [person.slug for person in self.config.users]
        latest = await self.journal.read(lambda reader: {slug: reader.latest_weight(slug) for slug in slugs})
        self.latest_weights = {slug: weight for slug, weight in latest.items() if weight is not None}

    def _decide(self, tx: Reader, reading: Reading, assignment: Assignment,
                calibrations: dict[str, Calibration | None] | None = None) -> NewMeasurement:
        """`calibrations`: those read so far in this job, by person (a job of many weigh-ins reads each
        person's once; nothing else changes it while the job runs)."""
        person = self.config.person(assignment.user) if assignment.user else None
        calibration = None
        if person is not None:
            if calibrations is not None and person.slug in calibrations:
                calibration = calibrations[person.slug]
            else:
                text = tx.meta_get(CALIBRATION_KEY.format(slug=person.slug))
                calibration = Calibration.from_text(text) if text else None
                if calibrations is not None:
                    calibrations[person.slug] = calibration
        metrics, refusals = composition_for(reading, person, calibration)
        return NewMeasurement(reading=reading, user=assignment.user, metrics=metrics, refusals=refusals,
                              assignment=assignment.how)

    def _ingest(self, tx: Tx, readings: Sequence[Reading]) -> tuple[list[Stored], dict[str, float]]:
        """On the writer thread: attribute, compose, insert; and the touched people's latest weights."""
        config = self.config
        items = []
        for reading in readings:
            assignment = assign_user(
                reading, config.users, lambda slug: tx.recent_weights(slug, RECENT_WEIGHINS),
                config.household.assign_tolerance_kg, config.ble,
            )
            items.append(self._decide(tx, reading, assignment))
        stored = tx.insert(items)
        touched = {item.user for item, result in zip(items, stored, strict=True) if result.created and item.user}
        latest = {slug: weight for slug in touched if (weight := tx.latest_weight(slug)) is not None}
        return stored, latest

    async def ingest(self, reading: Reading) -> Measurement:
        return (await self.ingest_many([reading]))[0]

    async def ingest_many(self, readings: Sequence[Reading]) -> list[Measurement]:
        """Durable on return, all or nothing; a re-sent weigh-in returns the stored measurement.
        Raises plausibility.Implausible, storing nothing, when any reading is not physically plausible."""
        plausibility.check(readings, self.clock())
        stored, latest = await self.journal.write(lambda tx: self._ingest(tx, readings))
        self.latest_weights.update(latest)
        for result in stored:
            measurement = result.measurement
            if result.created:
                weight = measurement.readings.get("weight_kg")
                log.info("stored %s measurement %d from %s for %s%s", measurement.kind, measurement.id,
                         measurement.device_id, measurement.user or "nobody (unassigned)",
                         f": {weight:.2f} kg" if weight is not None else "")
            else:
                log.info("measurement %s was already stored as %d", measurement.identity, measurement.id)
        return [result.measurement for result in stored]

    # -- history brought in from elsewhere --------------------------------------------------------

    def _import_chunk(self, tx: Tx, items: Sequence[Prepared], rule: MergeRule) -> list[ImportResult]:
        """One job: the chunk's records imported before are looked up together, and the stored
        weigh-ins they may merge into, each person's calibration read once, each device updated
        once, and what was imported remembered together."""
        known = imports.imported(tx.db, [item.row.identity for item in items])
        nearby = imports.Nearby(tx.db, rule, [item.row.taken_at for item in items])
        calibrations: dict[str, Calibration | None] = {}
        stored_calibrations: dict[str, str | None] = {}
        remembered: list[tuple[str, int]] = []
        with tx.devices_noted():
            results = [self._import_one(tx, item, nearby, known, calibrations, stored_calibrations, remembered)
                       for item in items]
        imports.remember(tx.db, remembered)
        return results

    def _import_one(self, tx: Tx, item: Prepared, nearby: imports.Nearby, known: dict[str, int],
                    calibrations: dict[str, Calibration | None], stored_calibrations: dict[str, str | None],
                    remembered: list[tuple[str, int]]) -> ImportResult:
        """`known`: identities imported before, this chunk's included; `nearby`: the weigh-ins the
        chunk's records may merge into, this chunk's included (both kept current here);
        `stored_calibrations`: each person's calibration text in the journal, read once per job."""
        row = item.row
        identity = row.identity
        known_id = known.get(identity)
        if known_id is not None:
            return ImportResult(item.origin, "unchanged", known_id)
        user = row.user
        if user is not None and user not in stored_calibrations:
            stored_calibrations[user] = tx.meta_get(CALIBRATION_KEY.format(slug=user))
        if user is None or not row.composed or stored_calibrations[user] != item.calibration:
            # Decided here: the record names nobody, or the person's calibration changed since it was prepared.
            reading = row_reading(row)
            assignment = Assignment(user, "import") if user is not None else assign_user(
                reading, self.config.users, lambda slug: tx.recent_weights(slug, RECENT_WEIGHINS),
                self.config.household.assign_tolerance_kg, self.config.ble)
            decided = self._decide(tx, reading, assignment, calibrations)
            row = new_row(reading, decided.user, decided.assignment, decided.metrics, decided.refusals)
            user = row.user
        target = nearby.same_weigh_in(user=user, device_id=row.device_id, moment=row.taken_at,
                                      weight_kg=item.weight_kg)
        if target is not None:
            added = imports.attach(tx.db, target, json.loads(row.readings), json.loads(row.vendor_metrics))
            if added:
                stored, how = self._reading(tx, target)
                owner = tx.measurement(target).user  # type: ignore[union-attr]
                tx.revise(target, self._decide(tx, stored, Assignment(owner, how), calibrations))
            known[identity] = target
            remembered.append((identity, target))
            return ImportResult(item.origin, "merged" if added else "unchanged", target)
        result = tx.insert_row(row)
        if result.created and row.kind == "body":
            nearby.stored(result.id, user, row.device_id, row.taken_at, item.weight_kg)
        known[identity] = result.id
        remembered.append((identity, result.id))
        return ImportResult(item.origin, "new" if result.created else "unchanged", result.id)

    def preview_import(self, reader: Reader | None, items: Sequence[Imported], rule: MergeRule,
                       seen: imports.Preview) -> list[ImportResult]:
        """What `import_readings` would do, decided from a read-only view (None: no journal yet) and
        `seen`, the records of this run before these: nothing is written (`import --dry-run`)."""
        results = []
        nearby = None if reader is None else imports.Nearby(reader.db, rule, [item.reading.taken_at.timestamp()
                                                                              for item in items])
        for item in items:
            reading = item.reading
            user = item.user
            if user is None and reader is not None:
                user = assign_user(reading, self.config.users,
                                   lambda slug: reader.recent_weights(slug, RECENT_WEIGHINS),  # type: ignore[union-attr]
                                   self.config.household.assign_tolerance_kg, self.config.ble).user
            weight = reading.values.get("weight_kg")
            outcome = seen.outcome(rule, reading.identity, user, reading.device_id, reading.taken_at, weight)
            if outcome is None and reader is not None and nearby is not None:
                known = imports.imported(reader.db, [reading.identity]).get(reading.identity)
                target = None if known is not None else nearby.same_weigh_in(
                    user=user, device_id=reading.device_id, moment=reading.taken_at.timestamp(), weight_kg=weight)
                if known is not None:
                    outcome = "unchanged"
                elif target is not None:
                    added = any(imports.additions(reader.db, target, dict(reading.values),
                                                  dict(reading.vendor_metrics)))
                    outcome = "merged" if added else "unchanged"
            results.append(ImportResult(item.origin, outcome or "new", 0))
        return results

    async def import_readings(self, items: Sequence[Imported], rule: MergeRule) -> list[ImportResult]:
        """Bring records from an export file or a vendor cloud in: each becomes a new weigh-in, is
        attached to the stored weigh-in it describes (`rule`), or is recognised as imported before.
        A record that is not physically plausible is skipped with the reason; the others are stored
        in one transaction (callers send bounded chunks), durable on return."""
        now = self.clock()
        slugs = {item.user for item in items if item.user is not None}
        preparer = Preparer(self.config, await self.journal.read(lambda reader: calibration_texts(reader, slugs)))
        refused: dict[int, str] = {}
        accepted = []
        for index, item in enumerate(items):
            problem = plausibility.reading_problem(item.reading, now)
            if problem is not None:
                refused[index] = problem[1]
            else:
                accepted.append(preparer.prepare(item))
        stored = iter(await self.import_prepared(accepted, rule))
        return [ImportResult(item.origin, "skipped", 0, refused[index]) if index in refused else next(stored)
                for index, item in enumerate(items)]

    async def import_prepared(self, items: Sequence[Prepared], rule: MergeRule) -> list[ImportResult]:
        """`import_readings` of records prepared (and checked for plausibility) beforehand."""
        results = await self.journal.write(lambda tx: self._import_chunk(tx, items, rule))
        if any(result.outcome in ("new", "merged") for result in results):
            await self.load()  # an import may bring a newer weigh-in than the latest known
        return results

    # -- later decisions about stored weigh-ins ---------------------------------------------------

    @staticmethod
    def _reading(tx: Reader, measurement_id: int) -> tuple[Reading, str]:
        found = tx.reading_of(measurement_id)
        if found is None:
            raise LookupError(f"no measurement {measurement_id}")
        if found[0].kind != "body":
            raise LookupError(f"measurement {measurement_id} is a {found[0].kind} reading, not a weigh-in")
        return found

    def _revise(self, tx: Tx, measurement_id: int, assignment: Assignment) -> Measurement:
        reading, _ = self._reading(tx, measurement_id)
        return tx.revise(measurement_id, self._decide(tx, reading, assignment))

    async def assign(self, measurement_id: int, slug: str | None, *, guest: bool = False,
                     check: Callable[[Measurement], None] | None = None) -> Measurement:
        """Attribute a weigh-in to a person by hand (None: to nobody), recompute, re-deliver.

        `guest`: nobody in the household stood on the scale (it stops waiting for a person, and sinks
        file it under `guest`). `check` sees the stored weigh-in in the same transaction and may raise
        to refuse the change, so two claims of one weigh-in at the same moment cannot both win."""
        if slug is not None and self.config.person(slug) is None:
            raise LookupError(f"{slug!r} is not in the household")
        assignment = Assignment(slug, "manual" if slug else GUEST if guest else "none")

        def job(tx: Tx) -> tuple[Measurement, dict[str, float | None]]:
            before = tx.measurement(measurement_id)
            if before is not None and check is not None:
                check(before)
            revised = self._revise(tx, measurement_id, assignment)  # raises LookupError for an unknown id
            moved = {before.user if before else None, slug} - {None}
            return revised, {user: tx.latest_weight(user) for user in moved if user}

        revised, latest = await self.journal.write(job)
        for user, weight in latest.items():
            if weight is None:
                self.latest_weights.pop(user, None)
            else:
                self.latest_weights[user] = weight
        return revised

    async def recompute(self, slug: str, since: datetime | None = None,
                        on_progress: Callable[[int], None] | None = None) -> int:
        """Recompute a person's weigh-ins (after a change of height, birth date or calibration), in
        bounded chunks: memory stays flat however long the history is."""
        if self.config.person(slug) is None:
            raise LookupError(f"{slug!r} is not in the household")
        where = Filter(user=slug, since=since, kind="body")

        def chunk(tx: Tx, after: Position) -> tuple[int, Position]:
            page = tx.page(where, after=after, limit=RECOMPUTE_CHUNK)
            for _, identifier in page:  # keep how each was attributed: by hand stays by hand
                reading, how = self._reading(tx, identifier)
                tx.revise(identifier, self._decide(tx, reading, Assignment(slug, how)))
            return len(page), page[-1] if page else after

        done, last = 0, FIRST
        while True:
            count, last = await self.journal.write(lambda tx, after=last: chunk(tx, after))
            if not count:
                return done
            done += count
            if on_progress is not None:
                on_progress(count)

    async def calibrate(self, slug: str, reference_fat_pct: float, on: date | None = None) -> Calibration:
        """Take the person's weigh-in of `on` (default: their latest) as read by the vendor app or a DEXA
        scan; weigh-ins from that day on are offset so that one reads `reference_fat_pct`."""
        person = self.config.person(slug)
        if person is None:
            raise LookupError(f"{slug!r} is not in the household")
        zone = self.config.household.zone
        where = Filter(user=slug, kind="body")
        if on is not None:
            start = datetime.combine(on, time(), zone)
            where = Filter(user=slug, kind="body", since=start, until=start + timedelta(days=1))

        def job(tx: Tx) -> Calibration:
            reference = next((m for m in tx.measurements(where, newest_first=True) if "weight_kg" in m.readings),
                             None)
            if reference is None:
                when = f"on {on.isoformat()}" if on else "yet"
                raise LookupError(f"{slug} has no weigh-in {when} to calibrate against")
            reading, _ = self._reading(tx, reference.id)
            uncalibrated = compose(reading.values, profile_at(person, reading.taken_at),
                                   vendor_metrics=reading.vendor_metrics or None)
            offset = calibration_offset(reference_fat_pct, uncalibrated)
            calibration = Calibration(reference.taken_at.date(), reference_fat_pct, offset)
            tx.meta_set(CALIBRATION_KEY.format(slug=slug), calibration.to_text())
            return calibration

        return await self.journal.write(job)
