"""The address of this machine on the interface a client reaches it through, for `address = "auto"`.

A listener bound to 0.0.0.0 does not learn which local address a UDP query was sent to. The kernel's
routing table knows which source address it would use to answer that client, which on a home LAN is
the address the client used: connecting a UDP socket (no packet is sent) and reading its name asks
exactly that. Answers are remembered per client for a minute, and the memory is bounded.
"""

from __future__ import annotations

import ipaddress
import socket

from interceptor.dns.clients import client_address
from interceptor.limits import MEMORY_LIMIT

REMEMBER_SECONDS = 60.0


class LocalAddresses:
    def __init__(self, fallback_targets: list[str]) -> None:
        """`fallback_targets`: IPv4 addresses (the upstreams) whose route gives our address for IPv6 clients."""
        self._fallback_targets = fallback_targets
        self._memory: dict[str, tuple[str | None, float]] = {}

    def ipv4_for(self, client_ip: str, listener_host: str, now: float) -> str | None:
        """Our IPv4 address as seen by `client_ip`, who reached the listener bound to `listener_host`."""
        try:
            listener = ipaddress.ip_address(listener_host.split("%", 1)[0])
        except ValueError:
            listener = None
        if isinstance(listener, ipaddress.IPv4Address) and not listener.is_unspecified:
            return listener_host
        remembered = self._memory.get(client_ip)
        if remembered is not None and remembered[1] > now:
            return remembered[0]
        found = self._route_source(client_ip)
        if len(self._memory) >= MEMORY_LIMIT:
            self._memory.clear()
        self._memory[client_ip] = (found, now + REMEMBER_SECONDS)
        return found

    def _route_source(self, client_ip: str) -> str | None:
        try:
            client = client_address(client_ip)
        except ValueError:
            return None
        targets = [str(client)] if client.version == 4 else self._fallback_targets
        for target in targets:
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.connect((target, 9))
                    return str(probe.getsockname()[0])
            except OSError:
                continue
        return None
