"""Why a listener could not start, worded once for every command, with that command's own flags.

The servers (the emulated cloud, the household page, the DNS responder, the TLS probe) raise
`ListenError` with the address and the operating system's error; the command that started them says
which flag moves each listener and which turns it off (`Listener`), and `explain` turns the two into
the line the user reads. `serve` starts every listener before it reports, so all the problems of one
attempt are told at once. Standard library only.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Listener:
    """How the running command lets a user move one listener (`flag`) or go without it (`off`)."""

    flag: str  # e.g. "--dns-listen"
    off: str | None = None  # e.g. "run without the responder (--no-dns)"


class ListenError(Exception):
    """`what` ("HTTP", "DNS", "web", "TLS probe") could not listen on host:port."""

    def __init__(self, what: str, host: str, port: int, error: OSError) -> None:
        super().__init__(f"{what} {host}:{port}: {error}")
        self.what = what
        self.host = host
        self.port = port
        self.error = error


# Who usually holds a port, and how to see it: said when the port is taken.
_USUAL_HOLDERS = {
    53: "often systemd-resolved, dnsmasq or unbound",
    80: "often another web server",
    443: "often another web server",
    8080: "often another web application",
}


def interpreter() -> str:
    """The binary that must hold the capability: the one the kernel runs, which the venv's `python`
    links to (a pyenv shim or `which python3` would name something else). /proc/self/exe names it even
    where a user may not read every link of the way (a venv made by root under /root)."""
    try:
        return os.readlink("/proc/self/exe")
    except OSError:
        return os.path.realpath(sys.executable)


def explain(problem: ListenError, listener: Listener) -> str:
    what, host, port, flag = problem.what, problem.host, problem.port, listener.flag
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    off = f", or {listener.off}" if listener.off else ""
    code = problem.error.errno
    if isinstance(problem.error, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return (f"{what} port {port} needs privileges: run as root, or let this Python bind ports below 1024 with"
                f" `sudo setcap cap_net_bind_service=+ep {interpreter()}` (the systemd unit in deploy/ grants"
                f" CAP_NET_BIND_SERVICE instead), or listen on a port above 1023 with {flag} HOST:PORT{off}")
    if code == errno.EADDRINUSE:
        holders = _USUAL_HOLDERS.get(port)
        seen = f" ({holders}; `sudo ss -lntup 'sport = :{port}'` shows which)" if holders else ""
        return f"{what} address {where} is already in use{seen}: stop that program, or choose {flag} HOST:PORT{off}"
    if code == errno.EADDRNOTAVAIL:
        return (f"{what} address {host} is not an address of this machine: choose {flag} with one that is"
                f" (0.0.0.0 for all of them){off}")
    return f"cannot listen for {what} on {where}: {problem.error.strerror or problem.error}{off}"


def explain_all(problems: Iterable[ListenError], listeners: Mapping[str, Listener]) -> str:
    """One line per listener that failed, in the order they were started."""
    return "\n".join(explain(problem, listeners[problem.what]) for problem in problems)
