"""Client address checks: who may use the responder, and who a split-horizon rule is for.

Both run for every query, so they remember their answer per client address: parsing an address with
`ipaddress` costs more than answering an intercepted name. The memories are bounded, because client
addresses come from the network and must not be able to grow the process.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from interceptor.limits import MEMORY_LIMIT


def client_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """The client's address, with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) seen as the IPv4 it is."""
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class NetworkSet:
    """A set of subnets answering `client_ip in networks`; an empty set contains every address."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(item, strict=False) for item in networks)
        self._memory: dict[str, bool] = {}

    @property
    def everyone(self) -> bool:
        return not self._networks

    def __contains__(self, client_ip: object) -> bool:
        if not self._networks:
            return True
        if not isinstance(client_ip, str):
            return False
        known = self._memory.get(client_ip)
        if known is not None:
            return known
        try:
            address = client_address(client_ip)
        except ValueError:
            return False
        inside = any(address in network for network in self._networks)
        if len(self._memory) >= MEMORY_LIMIT:
            self._memory.clear()
        self._memory[client_ip] = inside
        return inside
