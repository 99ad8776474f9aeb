"""What an import did, per file or per cloud account, and the chunked road into the pipeline.

Shared by every importer (export files here, the vendor clouds of issue 15): records go to the
pipeline in chunks of `CHUNK`, each one durable transaction, so memory stays flat and the server's
own writes never wait long behind an import; a dry run asks `Pipeline.preview_import` instead and
writes nothing. The summary counts new, merged and unchanged weigh-ins, and lists every skipped row
with its reason (the first `MAX_LISTED`; the rest counted).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from interceptor import plausibility
from interceptor.importers.people import Decision
from interceptor.importers.records import Refusal, Who
from interceptor.pipeline import Imported, ImportResult, Pipeline, Prepared
from interceptor.store.imports import MergeRule, Preview
from interceptor.store.journal import Reader

T = TypeVar("T")

# Records per transaction: one fsync per chunk, and a scale weighing in meanwhile waits for one chunk.
CHUNK = 500
# Skipped rows listed one by one in a summary; a file of garbage is not printed whole.
MAX_LISTED = 50

Progress = Callable[[int], None]


def chunks(items: Iterable[T], size: int = CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Summary:
    """One source's outcome: `label` names it (a file, an account), `title` its format."""

    label: str
    title: str
    new: int = 0
    merged: int = 0
    unchanged: int = 0
    ignored: int = 0  # rows that are not weigh-ins (steps, sleep): neither imported nor refused
    skipped: int = 0
    listed: list[Refusal] = field(default_factory=list)
    # Each person the file itself tells apart (a Zepp height, a SmartScaleConnect name), in the order
    # met, with the slug `--user` gave their rows (None: their own person, or nobody).
    people: dict[Who, str | None] = field(default_factory=dict)

    def placed(self, who: Who, decision: Decision) -> None:
        """Note whose a row says it is and where it went, so that the summary can say plainly when
        `--user` put rows the file gives to different people onto one person."""
        if who.height_cm is None and who.name is None:
            return
        if who not in self.people or decision.by_user_flag:
            self.people[who] = decision.slug if decision.by_user_flag else None

    def people_line(self) -> str | None:
        """"the file holds 3 people (heights 200, 161, 172 cm); all went to ben because of --user", or
        None when the file holds one person or `--user` placed none of its rows."""
        by_flag = [who for who, slug in self.people.items() if slug is not None]
        if len(self.people) < 2 or not by_flag:
            return None
        named = all(who.name is not None for who in self.people)

        def told(whos: list[Who]) -> str:
            if named:
                return ", ".join(str(who.name) for who in whos)
            return ", ".join(f"{who.height_cm:g}" for who in whos) + " cm"

        slugs = sorted({str(self.people[who]) for who in by_flag})
        kind = "names" if named else "heights"
        held = f"the file holds {len(self.people)} people ({kind} {told(list(self.people))})"
        if len(by_flag) == len(self.people):
            return f"{held}; all went to {', '.join(slugs)} because of --user"
        return (f"{held}; the rows of {'' if named else 'height '}{told(by_flag)} went to {', '.join(slugs)}"
                f" because of --user")

    def skip(self, refusal: Refusal) -> None:
        self.skipped += 1
        if len(self.listed) < MAX_LISTED:
            self.listed.append(refusal)

    def absorb(self, reading: Summary) -> None:
        """Take what reading the file found (rows skipped or ignored, the people it names) from the
        summary the process that read it kept (`importers.worker`); this one counts what was stored."""
        self.ignored += reading.ignored
        for refusal in reading.listed:
            self.skip(refusal)
        self.skipped += reading.skipped - len(reading.listed)
        for who, slug in reading.people.items():
            self.people.setdefault(who, slug)

    def count(self, results: Iterable[ImportResult]) -> None:
        for result in results:
            setattr(self, result.outcome, getattr(self, result.outcome) + 1)

    @property
    def weigh_ins(self) -> int:
        return self.new + self.merged + self.unchanged

    def lines(self, *, dry_run: bool = False) -> list[str]:
        would = "would be " if dry_run else ""
        head = (f"{self.label} ({self.title}): {self.new} {would}new, {self.merged} {would}merged into"
                f" stored weigh-ins, {self.unchanged} {would}unchanged, {self.skipped} skipped")
        if self.ignored:
            head += f", {self.ignored} other row(s) ignored (not weigh-ins)"
        lines = [head]
        people = self.people_line()
        if people is not None:
            lines.append(f"  {people}")
        lines += [f"  skipped {refusal.where}: {refusal.reason}" for refusal in self.listed]
        if self.skipped > len(self.listed):
            lines.append(f"  ... and {self.skipped - len(self.listed)} more skipped row(s)")
        return lines


def plausible_batches(items: Iterable[Imported], summary: Summary, now: datetime) -> Iterator[list[Imported]]:
    """The records in chunks of at most `CHUNK`, less those that are not physically plausible, which
    are skipped into `summary` with the reason."""
    for batch in chunks(items):
        plausible = []
        for item in batch:
            problem = plausibility.reading_problem(item.reading, now)
            if problem is None:
                plausible.append(item)
            else:
                summary.skip(Refusal(item.origin, problem[1]))
        if plausible:
            yield plausible


async def import_all(pipeline: Pipeline, batches: Iterable[Sequence[Prepared]], rule: MergeRule, summary: Summary,
                     on_progress: Progress | None = None) -> None:
    """Every batch into the journal, one per transaction, counted into `summary`.

    The next batch is prepared (or received from the process preparing it) while the writer thread
    stores this one: at most one waits ahead, so memory stays flat. A batch is sent only once the
    one before it is durable, so batches still commit one by one, in order, and a failed one stops
    the import before the next."""
    writing: tuple[asyncio.Future[list[ImportResult]], int] | None = None
    try:
        for batch in batches:
            if writing is not None:
                (results, size), writing = writing, None
                _counted(summary, await results, size, on_progress)
            writing = asyncio.ensure_future(pipeline.import_prepared(batch, rule)), len(batch)
            await asyncio.sleep(0)  # lets the task queue its job on the writer before the next batch is read
    finally:
        if writing is not None:  # also when reading failed: the batch in flight is stored and counted
            _counted(summary, await writing[0], writing[1], on_progress)


def _counted(summary: Summary, results: list[ImportResult], size: int, on_progress: Progress | None) -> None:
    summary.count(results)
    if on_progress is not None:
        on_progress(size)


def preview_all(pipeline: Pipeline, reader: Reader | None, items: Iterable[Imported], rule: MergeRule,
                summary: Summary, on_progress: Progress | None = None) -> None:
    """What `import_all` would count, from a read-only view (None: no journal yet); writes nothing."""
    seen = Preview()
    for batch in chunks(items):
        summary.count(pipeline.preview_import(reader, batch, rule, seen))
        if on_progress is not None:
            on_progress(len(batch))
