"""Which upstream resolver to ask first: health tracking without I/O.

An upstream that failed twice in a row is put at the back of the order for a while (1 s, doubling up
to 30 s) instead of being dropped, so a dead primary costs one timeout now and then rather than on
every query, and it is used again as soon as it answers. Healthy upstreams keep the configured order,
so a household's router can stay first and a public resolver be the fallback (dnsmasq "favours
servers that are known to be up": reference §2.1).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

FAILURES_BEFORE_BACKOFF = 2
MAX_BACKOFF_SECONDS = 30.0


@dataclass(slots=True)
class Upstream:
    host: str  # canonical text form, as the kernel reports reply sources
    port: int
    family: socket.AddressFamily
    failures: int = 0
    down_until: float = 0.0

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.family == socket.AF_INET6 else f"{self.host}:{self.port}"


class UpstreamPool:
    def __init__(self, addresses: list[tuple[str, int]]) -> None:
        self.upstreams = []
        for host, port in addresses:
            address = ipaddress.ip_address(host)
            family = socket.AF_INET if address.version == 4 else socket.AF_INET6
            self.upstreams.append(Upstream(str(address), port, family))

    def order(self, now: float) -> list[Upstream]:
        """Healthy upstreams in configured order, then the resting ones, soonest back first."""
        healthy = [upstream for upstream in self.upstreams if upstream.down_until <= now]
        resting = sorted((u for u in self.upstreams if u.down_until > now), key=lambda u: u.down_until)
        return healthy + resting

    def succeeded(self, upstream: Upstream) -> None:
        upstream.failures = 0
        upstream.down_until = 0.0

    def failed(self, upstream: Upstream, now: float) -> None:
        upstream.failures += 1
        if upstream.failures >= FAILURES_BEFORE_BACKOFF:
            backoff = min(MAX_BACKOFF_SECONDS, 2.0 ** (upstream.failures - FAILURES_BEFORE_BACKOFF))
            upstream.down_until = now + backoff
