"""What a running `interceptor serve` tells `interceptor doctor`: a small JSON file in the data dir.

`doctor` runs in another process, maybe as another user, after `serve` was started with flags it
cannot know (`--http-listen`), and it must answer "why does my scale not sync" from evidence. So
`serve` writes here where it actually listens and what its DNS responder and TLS probe saw of each
client (both bounded records), when something changed and at most every `SAVE_EVERY_S` seconds, on a
thread (the event loop never waits on the disk), atomically (a reader never sees half a file), and a
last time when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

STATE_FILE = "serve-state.json"
SAVE_EVERY_S = 2.0
MAX_STATE_BYTES = 1 << 20  # 256 DNS and 256 TLS entries are well under this; more is not our file


class StateError(Exception):
    """The state file is unreadable or not ours; the message says which and why."""


@dataclass
class ServerState:
    pid: int
    started_at: float
    config: str | None
    listening: dict[str, list[str]]  # "HTTP", "DNS", "web", "TLS probe" → ["0.0.0.0:80", ...]
    stopped_at: float | None = None
    updated_at: float = 0.0
    dns: list[dict[str, Any]] = field(default_factory=list)  # interceptor.dns.answers.Answered.as_json()
    tls: list[dict[str, Any]] = field(default_factory=list)  # interceptor.tls.probe.TlsAttempt.as_json()

    def running(self) -> bool:
        """Stopped cleanly, or its process is gone (killed): not running."""
        if self.stopped_at is not None:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:  # alive, and another user's (the service user's)
            return True
        return True


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def read_state(data_dir: Path) -> ServerState | None:
    """The last state `serve` wrote with this data dir; None when it never ran here."""
    path = state_path(data_dir)
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_STATE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as error:
        raise StateError(f"{path}: cannot read it ({error.strerror or error})") from None
    try:
        if len(data) > MAX_STATE_BYTES:
            raise ValueError("too large")
        document = json.loads(data)
        return ServerState(**{key: document[key] for key in ServerState.__dataclass_fields__ if key in document})
    except (ValueError, TypeError) as error:
        raise StateError(f"{path}: not a state file of `interceptor serve` ({error})") from None


def write_state(data_dir: Path, state: ServerState) -> None:
    path = state_path(data_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(asdict(state), separators=(",", ":")), encoding="utf-8")
    os.replace(temporary, path)


class StateWriter:
    """Saves `collect()` (the DNS and TLS records, as JSON) whenever `changes()` moved, off the loop."""

    def __init__(self, data_dir: Path, state: ServerState, changes: Callable[[], int],
                 collect: Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]) -> None:
        self.data_dir = data_dir
        self.state = state
        self.changes = changes
        self.collect = collect
        self._saved_at_change = -1
        self._task: asyncio.Task[None] | None = None

    async def _save(self) -> None:
        self.state.dns, self.state.tls = self.collect()  # on the loop that writes the records
        self.state.updated_at = time.time()
        try:
            await asyncio.to_thread(write_state, self.data_dir, self.state)
        except OSError as error:
            log.warning("cannot write %s for `interceptor doctor`: %s", state_path(self.data_dir),
                        error.strerror or error)

    async def _run(self) -> None:
        while True:
            changes = self.changes()
            if changes != self._saved_at_change:
                self._saved_at_change = changes
                await self._save()
            await asyncio.sleep(SAVE_EVERY_S)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="serve-state")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.state.stopped_at = time.time()
        await self._save()
