"""Bounded logging: every log line that quotes what a client sent goes through this module.

Anyone on the network can send refused, malformed or junk requests as fast as the link allows, and
one full log line each once filled a disk with 1.07 GB in 20 s. So:

* every such event is a *notice*: the first few of each window are logged in full (at most
  `lines_per_client` for one client address, `lines_per_window` for everyone), and the rest are only
  counted and reported as one summary line ("N more ... not logged") when the window ends, which the
  server triggers on a timer and at shutdown. Whatever the flood, the log grows by at most
  `lines_per_window + 1` lines per window;
* what a client sent appears in a line only as an *excerpt* (`excerpt`, `Quoted`): secrets masked
  (`interceptor.masking`), every character that is not printable escaped, so no client can start a
  line of its own or hide text from a terminal, and cut to a few hundred characters.

Sans-I/O: the caller passes the clock; the only effect is on the `logging` logger given.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from interceptor.limits import MEMORY_LIMIT
from interceptor.masking import mask_form, mask_mapping, mask_path

NOTICE_WINDOW = 60.0  # seconds
NOTICE_LINES = 10  # lines logged in full per window; the rest are counted
EXCERPT_CHARS = 200  # characters of client input in one log line


def _escaped(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(character if character.isprintable() else _escape(character) for character in text)


def _escape(character: str) -> str:
    code = ord(character)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def excerpt(value: str | bytes, limit: int = EXCERPT_CHARS, *, total: int | None = None) -> str:
    """`value` as a log line may show it: non-printable characters escaped (`\\x0a`), at most `limit`
    characters of it, and how long it was (`total`, by default its length) when it was cut. Only the
    first `limit` characters are ever looked at, so a 60 kB body costs what a short one does."""
    total = len(value) if total is None else total
    head = value[:limit]
    text = head.decode("utf-8", "backslashreplace") if isinstance(head, bytes) else head
    shown = _escaped(text)
    if len(shown) > limit:
        shown = shown[:limit]
    elif total <= len(head):
        return shown
    unit = "bytes" if isinstance(value, bytes) else "characters"
    return f"{shown}... [{total:,} {unit} in all]"


class Quoted:
    """Client input for a log line, rendered only if the line is written (a suppressed notice costs
    one small object): a form body or a request target with secrets masked, a mapping of fields with
    secret values masked, or plain text; always through `excerpt`."""

    __slots__ = ("limit", "value")

    def __init__(self, value: str | bytes | Mapping[str, str], limit: int = EXCERPT_CHARS) -> None:
        self.value = value
        self.limit = limit

    def __str__(self) -> str:
        value = self.value
        if isinstance(value, bytes):  # masked before it is cut: half a secret field is still one
            return excerpt(mask_form(value[: self.limit * 2]), self.limit, total=len(value))
        if isinstance(value, str):
            return excerpt(mask_path(value) if value.startswith("/") else value, self.limit)
        fields = mask_mapping(dict(list(value.items())[:64]))
        return excerpt("&".join(f"{name}={text[:self.limit]}" for name, text in fields.items()), self.limit,
                       total=sum(len(name) + len(text) + 1 for name, text in value.items()))

    __repr__ = __str__


class Notices:
    """At most `lines_per_window` notice lines per window (`lines_per_client` from one client
    address), then one summary line for the rest: "N more <what> not logged ..."."""

    def __init__(
        self, logger: logging.Logger, now: float, *, what: str, lines_per_window: int = NOTICE_LINES,
        lines_per_client: int | None = None, window: float = NOTICE_WINDOW,
    ) -> None:
        self.logger = logger
        self.what = what
        self.lines_per_window = lines_per_window
        self.lines_per_client = lines_per_window if lines_per_client is None else lines_per_client
        self.window = window
        self._window_start = now
        self._logged = 0
        self._logged_by_client: dict[str, int] = {}  # at most lines_per_window entries
        self._suppressed = 0
        self._by_client: dict[str, int] = {}  # suppressed notices per client, bounded by MEMORY_LIMIT
        self._clients_untracked = False

    def notice(
        self, now: float, client_ip: str, message: str, *args: object, level: int = logging.INFO, exc_info: bool = False
    ) -> None:
        """Log `message % args` if this window still has room for it, else count it against `client_ip`."""
        if now - self._window_start >= self.window:
            self.flush(now)
        mine = self._logged_by_client.get(client_ip, 0)
        if self._logged < self.lines_per_window and mine < self.lines_per_client:
            self._logged += 1
            self._logged_by_client[client_ip] = mine + 1
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
                "%d more %s not logged in the last %.0f s (from %s; the most from %s)",
                self._suppressed, self.what, now - self._window_start, clients, busiest,
            )
        self._window_start = now
        self._logged = 0
        self._logged_by_client.clear()
        self._suppressed = 0
        self._by_client.clear()
        self._clients_untracked = False
