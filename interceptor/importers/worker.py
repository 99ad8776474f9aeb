"""Export files read and prepared in a second process while this one writes them.

An import is CPU-bound Python: reading a row, composing its weigh-in and rendering its journal row
cost more than SQLite's work of storing it, and one interpreter runs one thread at a time. So when
the machine has a second core, a forked child reads every file, checks its records and prepares
them (composition, the row's JSON), and sends them in batches through a pipe while this process
stores the batch before. The pipe holds no more than the batch being sent: a child ahead of the
writer waits, so memory stays flat. The child never opens the journal; what it skipped and whom it
placed come back with each file's end, and the writer still decides every merge.

Sharing the preparing out (the child sending every other batch unprepared, for this process to
prepare while its writer thread stores) was measured and is slower: this process's two threads
then take turns on its interpreter, and the writer waits for its turn.

The child is forked before this process starts any thread (the journal's writer thread among
them), so it inherits no lock another thread held. Where there is no `fork` (or one core, or a
thread already running), this process reads and prepares everything itself (`Batches`).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import threading
import traceback
from collections.abc import Iterator, Sequence
from datetime import datetime

from interceptor.importers import run
from interceptor.importers.people import People
from interceptor.importers.records import ReadOptions
from interceptor.importers.summary import Summary, plausible_batches
from interceptor.pipeline import Imported, Prepared, Preparer

# How long a child that was told to stop (the import failed or was interrupted) gets before it is killed.
STOP_TIMEOUT_S = 5.0


class WorkerFailed(RuntimeError):
    """The reading process failed or ended early; the message says how."""


def available() -> bool:
    """A second process helps: `fork` exists, a second core is ours, and no thread runs yet."""
    return ("fork" in multiprocessing.get_all_start_methods() and len(os.sched_getaffinity(0)) > 1
            and threading.active_count() == 1)


class Batches:
    """Each source's prepared batches, in order: `for_source(index, summary)` yields the batches of
    source `index`, and what reading it found (rows skipped or ignored) goes into `summary`."""

    def __init__(self, sources: Sequence[run.Source], options: ReadOptions, people: People, now: datetime,
                 preparer: Preparer) -> None:
        self.sources = sources
        self.options = options
        self.people = people
        self.now = now
        self.preparer = preparer

    def _plausible(self, index: int, summary: Summary) -> Iterator[list[Imported]]:
        items = run.items(self.sources[index], self.options, self.people, self.now, summary)
        return plausible_batches(items, summary, self.now)

    def _prepared(self, batch: list[Imported]) -> list[Prepared]:
        prepare = self.preparer.prepare
        return [prepare(item) for item in batch]

    def for_source(self, index: int, summary: Summary) -> Iterator[list[Prepared]]:
        return map(self._prepared, self._plausible(index, summary))


class Worker(Batches):
    """`Batches` read by a forked child; use as a context manager, which starts it and stops it."""

    def __init__(self, sources: Sequence[run.Source], options: ReadOptions, people: People, now: datetime,
                 preparer: Preparer) -> None:
        super().__init__(sources, options, people, now, preparer)
        context = multiprocessing.get_context("fork")
        self._receiving, self._sending = context.Pipe(duplex=False)
        self._process = context.Process(target=self._child, name="interceptor-import-reader", daemon=True)
        self._next = 0

    def __enter__(self) -> Worker:
        self._process.start()
        self._sending.close()  # the child's end: EOF here once the child is gone
        return self

    def __exit__(self, *_: object) -> None:
        self._receiving.close()  # a child still sending gets a broken pipe and ends
        self._process.join(STOP_TIMEOUT_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def _child(self) -> None:
        """Runs in the child: per source ("batch", prepared)..., then ("end", summary); ("error",
        traceback) on a failure."""
        self._receiving.close()
        gc.freeze()  # what the parent made is never collected here: its pages stay shared, not copied
        sending = self._sending
        try:
            for index, source in enumerate(self.sources):
                summary = Summary(source.label, source.title)
                for batch in self._plausible(index, summary):
                    sending.send(("batch", self._prepared(batch)))
                sending.send(("end", summary))
        except (KeyboardInterrupt, BrokenPipeError):
            pass  # interrupted with the parent, or the parent stopped listening: it says why
        except BaseException:  # whatever it was, the parent reports it
            with contextlib.suppress(OSError):
                sending.send(("error", traceback.format_exc()))
        finally:
            sending.close()

    def for_source(self, index: int, summary: Summary) -> Iterator[list[Prepared]]:
        if index != self._next:
            raise ValueError(f"sources are read in order: {self._next} is next, not {index}")
        self._next += 1
        while True:
            try:
                kind, payload = self._receiving.recv()
            except EOFError:
                self._process.join(STOP_TIMEOUT_S)
                raise WorkerFailed(f"the process reading {self.sources[index].label} ended early"
                                   f" (exit code {self._process.exitcode})") from None
            if kind == "batch":
                yield payload
            elif kind == "end":
                summary.absorb(payload)
                return
            else:
                raise WorkerFailed(f"reading {self.sources[index].label} failed:\n{payload}")


def batches(sources: Sequence[run.Source], options: ReadOptions, people: People, now: datetime,
            preparer: Preparer) -> contextlib.AbstractContextManager[Batches]:
    """A `Worker` when `available`, else batches read and prepared in this process."""
    if available():
        return Worker(sources, options, people, now, preparer)
    return contextlib.nullcontext(Batches(sources, options, people, now, preparer))
