"""Is the journal whole? A damaged page must stop the server from acknowledging weigh-ins it cannot keep.

SQLite notices a damaged page only when something reads it. Without a check, the server started on
a damaged journal, answered scales `status 0`, and only later `measurements list` failed with
"database disk image is malformed". So:

* `interceptor serve` runs `PRAGMA quick_check` (every page and every b-tree, without comparing
  indexes to tables) on a connection of its own before it listens. It waits at most
  `STARTUP_CHECK_S` for the answer: 1 million weigh-ins (1.5 GB) take 2.8 s on a warm disk here,
  and far longer from an SD card, so a check that has not finished goes on in the background while
  the server runs. Damage found before the server listens stops it with one line saying what to do;
  damage found later, or met by a write (SQLITE_CORRUPT, SQLITE_NOTADB), makes the journal refuse
  every further write (`Journal.mark_damaged`): scales get a non-zero status and keep their weigh-ins.
* `interceptor journal check` runs the same check to its end; `interceptor journal recover`
  (`store.recover`) copies what can be read into a new journal and keeps the damaged one.
"""

from __future__ import annotations

import concurrent.futures
import sqlite3
import threading
from pathlib import Path

from interceptor.store.database import JournalError, is_damage

__all__ = ["STARTUP_CHECK_S", "JournalDamaged", "damaged_message", "is_damage", "quick_check", "start_check"]

STARTUP_CHECK_S = 5.0
PROBLEM_CHARS = 300


class JournalDamaged(JournalError):
    """The journal file is damaged; the message names it and the command that recovers it."""


def damaged_message(path: Path, problem: str) -> str:
    return (f"the journal {path} is damaged ({problem}): weigh-ins are not acknowledged into it; stop the server"
            " and run `interceptor journal recover`, which copies what can be read into a new journal and keeps"
            " the damaged one")


def quick_check(path: Path, *, read_only: bool = True) -> str | None:
    """The first problem `PRAGMA quick_check` finds in the journal, on one line; None when it is whole.
    `read_only=False` for a file nobody else uses: its write-ahead log files are then removed after."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode={'ro' if read_only else 'rw'}", uri=True,
                                     check_same_thread=False)
    except sqlite3.DatabaseError as error:
        return str(error)
    try:
        first = connection.execute("PRAGMA quick_check(1)").fetchone()
    except sqlite3.DatabaseError as error:
        return str(error)
    finally:
        connection.close()
    if first is None or first[0] == "ok":
        return None
    return " ".join(str(first[0]).split())[:PROBLEM_CHARS]


def start_check(path: Path) -> concurrent.futures.Future[str | None]:
    """`quick_check` on a thread of its own (it can take minutes on a large journal on an SD card)."""
    result: concurrent.futures.Future[str | None] = concurrent.futures.Future()

    def run() -> None:
        try:
            result.set_result(quick_check(path))
        except BaseException as error:  # reported to whoever waits
            result.set_exception(error)

    threading.Thread(target=run, name="journal-check", daemon=True).start()
    return result
