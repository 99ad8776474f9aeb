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


@contextlib.contextmanager
def logging_off_the_loop() -> Iterator[None]:
    """For the life of a server: log records go through a queue to a writer thread; lines are
    formatted by the caller, written by the thread, and all written before this returns."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    if not handlers:
        yield
        return
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(records, *handlers, respect_handler_level=True)
    for handler in handlers:
        root.removeHandler(handler)
    root.addHandler(logging.handlers.QueueHandler(records))
    listener.start()
    try:
        yield
    finally:
        root.handlers = handlers
        listener.stop()


def serve(coroutine: Coroutine[Any, Any, T]) -> T:
    """`run` for a server: its log lines are written off the event loop."""
    with logging_off_the_loop():
        return run(coroutine)
