"""Loaded at start-up by every Python process the Garmin tests run (their PYTHONPATH names this
directory): any connection or name lookup to something other than loopback is refused and written to
the file `GARMIN_TEST_NETWORK_LOG` names, so a test can assert that Garmin was never contacted.

Python's audit events see every socket the interpreter opens (requests, aiohttp, the standard
library); libcurl's own sockets (curl_cffi) are not Python's, which is why the stand-in's proxy also
refuses and records any CONNECT to a host that is not Garmin's (tests/garmin/standin.py).

`GARMIN_TEST_WITHOUT` names modules (comma-separated) that are made unimportable, as if not
installed: Python's documented way is a `None` entry in `sys.modules`.
"""

import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("GARMIN_TEST_NETWORK_LOG")

for _name in filter(None, os.environ.get("GARMIN_TEST_WITHOUT", "").split(",")):
    sys.modules[_name] = None  # type: ignore[assignment]


def _loopback(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if host is None or host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _refuse(what: str) -> None:
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as log:
            log.write(what + "\n")
    raise OSError(f"network guard (tests): {what} is not loopback")


def _hook(event: str, args: tuple) -> None:
    if event == "socket.connect":
        sock, address = args
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _loopback(address[0]):
            _refuse(f"connect {address[0]}")
    elif event == "socket.getaddrinfo" and not _loopback(args[0]):
        _refuse(f"getaddrinfo {args[0]!r}")


if _LOG:
    sys.addaudithook(_hook)
