"""How long-running commands run their event loop, and where their log lines are written.

uvloop when installed: a C event loop, a third less CPU per scale conversation and per DNS query on
a small box (bench/conversation.py); asyncio's own loop otherwise. The BLE gateway keeps asyncio's
own loop: it forwards a few thousand frames a second at most and must stay under 40 MB.

A server's log lines are handed to a thread that writes them (`serving`): a log line written to a
slow disk or a full journald pipe must not hold up the event loop that answers scales and DNS.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import queue
import time
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """The loop is imported here, when a command runs one: `interceptor --help` needs neither."""
    try:
        import uvloop
    except ImportError:
        import asyncio

        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


LINE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LineFormatter(logging.Formatter):
    """The default formatter, with the date and time of the last second kept: a server writes many
    lines a second under load, and turning a time into text costs a sixth of a line."""

    _second: tuple[int, str] = (-1, "")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None or self.converter is not time.localtime:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        cached, text = self._second
        if cached != second:
            text = time.strftime(self.default_time_format, time.localtime(second))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)


class _Enqueue(logging.handlers.QueueHandler):
    """`QueueHandler` whose copy of a record (made so that other handlers still see the original)
    is a copy of its attributes: `copy.copy`'s generic protocol cost a quarter of a log line."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if self.formatter is None and not (record.exc_info or record.exc_text or record.stack_info):
            message = record.getMessage()  # what the default formatter would return, without its steps
        else:
            message = self.format(record)
        copied = logging.LogRecord.__new__(type(record))
        copied.__dict__.update(record.__dict__)
        copied.message = copied.msg = message
        copied.args = copied.exc_info = copied.exc_text = copied.stack_info = None
        return copied


@contextlib.contextmanager
def logging_off_the_loop() -> Iterator[None]:
    """For the life of a server: log records go through a queue to a writer thread; lines are
    formatted by the caller, written by the thread, and all written before this returns.

    A server logs a line per weigh-in, so a line must be cheap: its records skip what no line of
    ours shows (the caller's file and line, the thread and process), as the logging HOWTO's
    "Optimization" section describes; that is a tenth of a line's cost."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    if not handlers:
        yield
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(_Enqueue(records))
    saved = logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    listener.start()
    try:
        yield
    finally:
        root.handlers = handlers
        listener.stop()
        logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing = saved


def serve(coroutine: Coroutine[Any, Any, T]) -> T:
    """`run` for a server: its log lines are written off the event loop."""
    with logging_off_the_loop():
        return run(coroutine)
