"""Interception rules: which names the responder answers itself, with which address, for whom.

Names match on label boundaries (`withings.net` as a suffix covers `scalews.withings.net` but not
`evilwithings.net`, unlike dnslib's glob matching: reference §1.2). An exact-name rule wins over a
suffix rule, a longer suffix over a shorter one, and among rules for the same name the first one in
the config whose `clients` contain the client. A rule limited to clients that do not match simply
does not apply, so everyone else gets the real, forwarded answer: that is the split horizon.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from interceptor.dns.clients import NetworkSet
from interceptor.dns.settings import InterceptRule
from interceptor.dns.wire import TYPE_A, TYPE_AAAA, Query, name_wire


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule; `packed` is None for 'auto' (the address of the interface the query came in on)."""

    name: str
    record_type: int
    packed: bytes | None
    clients: NetworkSet
    ttl: int


def compile_rule(rule: InterceptRule) -> Rule:
    if rule.address == "auto":
        return Rule(rule.name, TYPE_A, None, NetworkSet(rule.clients), rule.ttl)
    address = ipaddress.ip_address(rule.address)
    record_type = TYPE_A if address.version == 4 else TYPE_AAAA
    return Rule(rule.name, record_type, address.packed, NetworkSet(rule.clients), rule.ttl)


class Rules:
    """Rules indexed by wire-format name, so matching a query costs a dict lookup per label."""

    def __init__(self, rules: Iterable[InterceptRule]) -> None:
        self._exact: dict[bytes, list[Rule]] = {}
        self._suffix: dict[bytes, list[Rule]] = {}
        for rule in rules:
            table = self._suffix if rule.subdomains else self._exact
            table.setdefault(name_wire(rule.name), []).append(compile_rule(rule))

    def match(self, query: Query, client_ip: str) -> Rule | None:
        candidates = self._exact.get(query.qname)
        if candidates:
            rule = _first_for(candidates, client_ip)
            if rule is not None:
                return rule
        if self._suffix:
            qname = query.qname
            for offset in query.label_offsets:
                candidates = self._suffix.get(qname[offset:])
                if candidates:
                    rule = _first_for(candidates, client_ip)
                    if rule is not None:
                        return rule
        return None


def _first_for(candidates: list[Rule], client_ip: str) -> Rule | None:
    return next((rule for rule in candidates if client_ip in rule.clients), None)
