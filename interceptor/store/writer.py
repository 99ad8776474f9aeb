"""One thread that owns an SQLite file's write connection and commits in groups.

The event loop that answers scales also answers DNS for the whole house, so it must never wait on a
disk: an fsync on an SD card can take 300 ms. Every write is a *job* (a function of the connection)
handed to this thread; the caller awaits its result. Jobs that are queued together run in one
transaction with one commit (group commit): ten scales weighing in at once cost one fsync, not ten.
Each job runs inside its own savepoint, so a job that fails is rolled back alone and its caller gets
the exception, while the others in the group commit.

A job asks for `durable=True` when its caller acknowledges something to a device on return (a
weigh-in): its group commits with `synchronous=FULL` (the WAL is fsynced before the result is
delivered). Bookkeeping whose loss in a power cut costs nothing but a repeat (device last-seen, an
outbox item marked delivered, the request log) commits with `synchronous=NORMAL`, and never makes a
weigh-in wait for it longer than one group.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
C = TypeVar("C")

def _as_is(value: object) -> object:
    return value


# sqlite3 binds int, float, str and bytearray parameters as they are, but takes any other value
# (None, bytes) for an object to adapt first: two attribute lookups that fail, a fifth of binding a
# request-log row, and a device's many unknown fields are None. Registered as adapted to themselves,
# they are found in sqlite3's table of adapters at once. (Process-wide, and binds exactly the same.)
sqlite3.register_adapter(type(None), _as_is)
sqlite3.register_adapter(bytes, _as_is)

# A group is closed at this many jobs, so one commit never makes the first caller wait behind an
# unbounded crowd; more jobs simply form the next group.
MAX_GROUP = 512


@dataclass(slots=True)
class _Job(Generic[C]):
    run: Callable[[C], Any]
    durable: bool
    # Where the result goes: an event loop's future (`write`), settled on its loop; or a thread-safe
    # future (`submit`, `call`).
    waiter: asyncio.Future[Any] | None = None
    future: concurrent.futures.Future[Any] | None = None


class WriterClosed(RuntimeError):
    """The writer was closed; nothing more can be written through it."""


def _settle(results: list[tuple[asyncio.Future[Any], bool, Any]]) -> None:
    """On an event loop: hand a group's results to the coroutines awaiting them (one wake-up per
    group and loop, not one per job)."""
    for waiter, ok, value in results:
        if waiter.done():  # its caller was cancelled: the job ran and committed all the same
            continue
        if ok:
            waiter.set_result(value)
        else:
            waiter.set_exception(RuntimeError("a journal job raised StopIteration")
                                 if isinstance(value, StopIteration) else value)


class Writer(Generic[C]):
    """Runs jobs on a dedicated thread against the object `open_connection` returns there.

    `open_connection` runs on the writer thread (SQLite connections belong to the thread that made
    them); `wrap` turns the raw connection into what jobs receive (e.g. a transaction API)."""

    def __init__(
        self,
        name: str,
        open_connection: Callable[[], sqlite3.Connection],
        wrap: Callable[[sqlite3.Connection], C],
        *,
        after_commit: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self._open = open_connection
        self._wrap = wrap
        self._after_commit = after_commit
        self._jobs: queue.SimpleQueue[_Job[C] | None] = queue.SimpleQueue()
        self._closed = False
        self.commits = 0  # groups committed: with `jobs`, shows how well writes are grouped
        self.jobs = 0
        self._started = concurrent.futures.Future[None]()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        self._started.result()  # an unusable file fails here, in the caller, with its own error

    # -- the caller's side ----------------------------------------------------------------------

    def _queue(self, job: _Job[C]) -> None:
        if self._closed:
            raise WriterClosed(f"{self.name} is closed")
        self._jobs.put(job)

    def submit(self, run: Callable[[C], T], *, durable: bool = True) -> concurrent.futures.Future[T]:
        """Queue a job; the future holds its result once its group has committed."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue(_Job(run, durable, future=future))
        return future

    async def write(self, run: Callable[[C], T], *, durable: bool = True) -> T:
        """Queue a job and wait for it without blocking the event loop."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue(_Job(run, durable, waiter=waiter))
        return await waiter

    def call(self, run: Callable[[C], T], *, durable: bool = True) -> T:
        """Queue a job and block until it committed: for command-line callers with no event loop."""
        return self.submit(run, durable=durable).result()

    def close(self) -> None:
        """Finish every queued job, then close the connection."""
        if self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        self._thread.join()

    # -- the writer thread ----------------------------------------------------------------------

    def _main(self) -> None:
        try:
            connection = self._open()
            wrapped = self._wrap(connection)
        except BaseException as error:  # reported to the constructor's caller
            self._started.set_exception(error)
            return
        self._started.set_result(None)
        synchronous = ""
        jobs = self._jobs
        try:
            while True:
                first = jobs.get()
                if first is None:
                    return
                group = [first]
                stop = False
                while len(group) < MAX_GROUP and not jobs.empty():  # only this thread takes jobs
                    job = jobs.get()
                    if job is None:
                        stop = True
                        break
                    group.append(job)
                wanted = "FULL" if any(job.durable for job in group) else "NORMAL"
                if wanted != synchronous:
                    connection.execute(f"PRAGMA synchronous={wanted}")
                    synchronous = wanted
                self._run_group(connection, wrapped, group)
                if stop:
                    return
        finally:
            connection.close()

    def _run_group(self, connection: sqlite3.Connection, wrapped: C, group: list[_Job[C]]) -> None:
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            self._deliver(group, [(False, error)] * len(group))
            return
        if len(group) == 1:  # a job alone needs no savepoint: if it fails, the transaction is undone
            outcomes = [self._run_alone(connection, wrapped, group[0])]
        else:
            outcomes = [self._run_in_savepoint(connection, wrapped, job) for job in group]
        if connection.in_transaction:
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as error:  # a full disk, an I/O error: nothing of the group was written
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                self._deliver(group, [(False, error)] * len(group))
                return
            self.commits += 1
            self.jobs += len(group)
            if self._after_commit is not None:
                try:
                    self._after_commit()
                except Exception:
                    log.exception("%s: a commit listener failed", self.name)
        self._deliver(group, outcomes)

    @staticmethod
    def _run_alone(connection: sqlite3.Connection, wrapped: C, job: _Job[C]) -> tuple[bool, Any]:
        try:
            return True, job.run(wrapped)
        except BaseException as error:  # its caller gets the error; nothing of it is written
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            return False, error

    @staticmethod
    def _run_in_savepoint(connection: sqlite3.Connection, wrapped: C, job: _Job[C]) -> tuple[bool, Any]:
        connection.execute("SAVEPOINT job")
        try:
            result = job.run(wrapped)
        except BaseException as error:  # this job alone is undone; its caller gets the error
            connection.execute("ROLLBACK TO job")
            connection.execute("RELEASE job")
            return False, error
        connection.execute("RELEASE job")
        return True, result

    @staticmethod
    def _deliver(group: list[_Job[C]], outcomes: list[tuple[bool, Any]]) -> None:
        """Results to their callers: thread-safe futures at once, event loops one wake-up each."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], bool, Any]]] = {}
        for job, (ok, value) in zip(group, outcomes, strict=True):
            if job.waiter is not None:
                by_loop.setdefault(job.waiter.get_loop(), []).append((job.waiter, ok, value))
            elif job.future is not None and job.future.set_running_or_notify_cancel():
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
        for loop, results in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, results)
