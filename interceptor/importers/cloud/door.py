"""Where cloud records go, page by page: the pipeline's import door, or for a dry run its preview.

A real run is `Pipeline.import_readings` (new weigh-in, attached to a stored one by the merge rule,
known from an earlier import, or skipped as implausible), one page per durable transaction. A dry run
is `Pipeline.preview_import` over a read-only view of the journal (none yet: everything is new), with
one `Preview` for the whole run, so a record that an earlier one of the run would absorb counts as a
real run would count it. Pages come from the network one at a time, which is why this is not the
export files' `summary.import_all` (it takes the records as one iterable).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from interceptor.config import Config
from interceptor.importers.cloud.errors import CloudError
from interceptor.pipeline import Imported, ImportResult, Pipeline
from interceptor.store.imports import MergeRule, Preview
from interceptor.store.journal import Journal, JournalError, Reader, reader_of

JOURNAL_FILE = "journal.sqlite"


class Door:
    def __init__(self, config: Config, *, dry_run: bool) -> None:
        self.config = config
        self.dry_run = dry_run
        self.pipeline: Pipeline | None = None
        self._reader: Reader | None = None
        self._seen = Preview()
        self._stack = contextlib.ExitStack()

    async def __aenter__(self) -> Door:
        path = self.config.data_dir / JOURNAL_FILE
        try:
            if self.dry_run:
                self.pipeline = Pipeline(None, self.config)  # type: ignore[arg-type]  # a preview never writes
                if path.exists():
                    self._reader = self._stack.enter_context(reader_of(path))
                return self
            from interceptor.sinks import configured_sinks

            journal = Journal(path, configured_sinks(self.config))
            self._stack.callback(journal.close)
            self.pipeline = Pipeline(journal, self.config)
            await self.pipeline.load()
        except JournalError as error:
            self._stack.close()
            raise CloudError(str(error)) from None
        return self

    async def __aexit__(self, *_: object) -> None:
        await asyncio.to_thread(self._stack.close)  # the journal commits what is queued: off the event loop

    async def send(self, items: Sequence[Imported], rule: MergeRule) -> list[ImportResult]:
        if not items:
            return []
        assert self.pipeline is not None, "use `async with Door(...)`"
        try:
            if self.dry_run:
                return self.pipeline.preview_import(self._reader, items, rule, self._seen)
            return await self.pipeline.import_readings(items, rule)
        except JournalError as error:
            raise CloudError(str(error)) from None
