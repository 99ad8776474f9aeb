"""Export files into the journal: detect each file's format, read it in full once to check it, then
read it again and send its weigh-ins through the pipeline.

The first pass holds nothing but counts: a file that turns out damaged at its last row (a truncated
zip, a broken CSV quote) is refused before anything of it is written, so nothing is half imported.
The second pass streams records into chunks. An interrupted second pass is finished by running the
same import again: records imported before are recognised and left unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from pydantic import ValidationError

from interceptor.importers import formats
from interceptor.importers.mifitness import Ignored
from interceptor.importers.people import People
from interceptor.importers.records import FormatError, ReadOptions, Record, Refusal, checked
from interceptor.importers.summary import Summary
from interceptor.model import Reading
from interceptor.pipeline import Imported
from interceptor.store.imports import MergeRule

# A file names a person (or is one person's): the same weigh-in is the same person, moments apart.
FILE_RULE = MergeRule(same="person", window_s=120, weight_kg=0.1)
SOURCE = "import"


@dataclass(frozen=True)
class Source:
    """One file to import (a Withings weight.csv carries its other.csv along)."""

    label: str
    data: bytes
    format: str
    other: tuple[bytes, str] | None = None

    @property
    def title(self) -> str:
        return formats.BY_NAME[self.format].title


def sources(files: Sequence[tuple[str, bytes]], forced: str | None = None) -> list[Source]:
    """The files as sources, each with its format (detected unless `forced`); a Withings other.csv
    goes with the weight.csv given next to it."""
    found: list[Source] = []
    others: list[tuple[bytes, str]] = []
    for label, data in files:
        kind = formats.detect(data, label) if forced is None else forced
        if kind == formats.WITHINGS_OTHER:
            others.append((data, label))
        else:
            found.append(Source(label, data, kind))
    if others:
        weights = [index for index, source in enumerate(found) if source.format == "withings"]
        if len(others) > 1 or len(weights) != 1:
            raise FormatError(f"{others[0][1]}: a Withings other.csv holds no weights; give it together with"
                              " exactly one weight.csv (or import the export zip)")
        index = weights[0]
        found[index] = Source(found[index].label, found[index].data, "withings", others[0])
    return found


def rows(source: Source, options: ReadOptions, now: datetime) -> Iterator[Record | Refusal | Ignored]:
    return checked(formats.read(source.format, source.data, source.label, options, source.other), now)  # type: ignore[arg-type]


def check(source: Source, options: ReadOptions, now: datetime) -> int:
    """Read the whole file once, keeping nothing: the number of rows, or the FormatError that makes
    it unimportable (without mapping the rows, for a format that can count them so)."""
    counted = formats.count(source.format, source.data, source.label, options)
    return sum(1 for _ in rows(source, options, now)) if counted is None else counted


def items(source: Source, options: ReadOptions, people: People, now: datetime, summary: Summary,
          ) -> Iterator[Imported]:
    """The file's weigh-ins as pipeline items; refusals and ignored rows go into `summary`."""
    device = formats.BY_NAME[source.format].device
    for row in rows(source, options, now):
        if isinstance(row, Ignored):
            summary.ignored += 1
            continue
        if isinstance(row, Refusal):
            summary.skip(row)
            continue
        decision = people.decide(row.who)
        summary.placed(row.who, decision)
        if decision.slug is None:
            summary.skip(Refusal(row.where, decision.reason))
            continue
        try:
            reading = Reading(source=SOURCE, device_id=f"{device}:{decision.slug}",
                              device_model=row.origin or source.title, taken_at=row.taken_at, received_at=now,
                              values=row.values, vendor_metrics=row.vendor)
        except ValidationError as error:
            summary.skip(Refusal(row.where, f"not a weigh-in: {error.errors()[0]['msg']}"))
            continue
        yield Imported(reading, decision.slug, row.where)
