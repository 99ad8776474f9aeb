"""Bounded logging of what strangers and junk make the responder do.

Anyone on the network can send refused or malformed queries as fast as the link allows, and one log
line each would fill the disk. So every such event is a *notice*: the first few of each window are
logged in full, and the rest are only counted and reported as one summary line ("N more ... not
logged") when the window ends, which the server triggers on a timer and at shutdown. Whatever the
flood, the log grows by at most `lines_per_window + 1` lines per window.

Sans-I/O: the caller passes the clock; the only effect is on the `logging` logger given.
"""

from __future__ import annotations

import logging

from interceptor.dns.clients import MEMORY_LIMIT

NOTICE_WINDOW = 60.0  # seconds
NOTICE_LINES = 10  # lines logged in full per window; the rest are counted


class Notices:
    """At most `lines_per_window` notice lines per window, then one summary line for the rest."""

    def __init__(
        self, logger: logging.Logger, now: float, *, lines_per_window: int = NOTICE_LINES, window: float = NOTICE_WINDOW
    ) -> None:
        self.logger = logger
        self.lines_per_window = lines_per_window
        self.window = window
        self._window_start = now
        self._logged = 0
        self._suppressed = 0
        self._by_client: dict[str, int] = {}  # suppressed notices per client, bounded by MEMORY_LIMIT
        self._clients_untracked = False

    def notice(
        self, now: float, client_ip: str, message: str, *args: object, level: int = logging.INFO, exc_info: bool = False
    ) -> None:
        """Log `message % args` if this window still has room, else count it against `client_ip`."""
        if now - self._window_start >= self.window:
            self.flush(now)
        if self._logged < self.lines_per_window:
            self._logged += 1
            self.logger.log(level, message, *args, exc_info=exc_info)
            return
        self._suppressed += 1
        if client_ip in self._by_client:
            self._by_client[client_ip] += 1
        elif len(self._by_client) < MEMORY_LIMIT:
            self._by_client[client_ip] = 1
        else:
            self._clients_untracked = True

    def flush(self, now: float) -> None:
        """Log the summary of the window so far, if anything was held back, and start a new window."""
        if self._suppressed:
            busiest = max(self._by_client, key=self._by_client.__getitem__)
            count = len(self._by_client)
            clients = f"{count}+ client addresses" if self._clients_untracked else (
                f"{count} client address{'es' if count > 1 else ''}"
            )
            self.logger.info(
                "%d more refused or malformed DNS queries not logged in the last %.0f s (from %s; the most from %s)",
                self._suppressed, now - self._window_start, clients, busiest,
            )
        self._window_start = now
        self._logged = 0
        self._suppressed = 0
        self._by_client.clear()
        self._clients_untracked = False
