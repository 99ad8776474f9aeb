"""What to answer, decided without any I/O: bytes in, bytes (or "ask an upstream") out.

The order for every query is: who is asking (allowed subnets, then rate limit), is it well formed,
is the name intercepted for this client, is it ANY, is the answer cached, and only then forward.
Everything that can be answered at once is; forwarding returns a `Forward` that the server hands to
the forwarder and brings back to `finish`, which caches the reply and fits it to the client. The
in-flight count lives here too, so that beyond the cap a client is told REFUSED at once (as dnsmasq
and CoreDNS do: reference §2.1) rather than the process growing while an upstream is silent.

Nothing here may be turned into an amplifier or a log filler by someone who forges source addresses
(issue 11): ANY is answered with one small record and never forwarded (RFC 8482), no UDP answer
exceeds EDNS_PAYLOAD (wire.Query.udp_limit), REFUSED answers are rate limited per client and in
total (beyond, silence), and refused or malformed queries are logged through `Notices`, a few lines
a minute whatever arrives.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass

from dnslib import QTYPE, RCODE

from interceptor.dns.answers import InterceptLog, watched
from interceptor.dns.cache import Cache, CacheKey
from interceptor.dns.clients import NetworkSet
from interceptor.dns.rules import Rule, Rules
from interceptor.dns.settings import DnsSettings
from interceptor.dns.wire import (
    CLASS_IN,
    EXTENDED_RCODE_BADVERS,
    FLAG_AD,
    FLAG_CD,
    FLAG_RD,
    HEADER,
    RCODE_NOERROR,
    RCODE_REFUSED,
    RCODE_SERVFAIL,
    TYPE_ANY,
    Query,
    WireError,
    address_record,
    build_reply,
    header_only_reply,
    hinfo_record,
    inspect_reply,
    name_text,
    opt_record,
    parse_query,
    truncated,
)
from interceptor.limits import RateLimiter
from interceptor.notices import Notices

query_log = logging.getLogger("interceptor.dns.queries")
notice_log = logging.getLogger("interceptor.dns.notices")

ANY_TTL = 3600  # of the synthesized HINFO; RFC 8482 leaves it to the operator

LocalIpv4 = Callable[[str, str, float], str | None]


@dataclass(slots=True)
class Forward:
    """A query that needs an upstream: what to send, and what `finish` needs to answer the client."""

    query: Query
    key: CacheKey
    message: bytes  # the upstream query; its id is set per attempt by the forwarder
    question_end: int
    client_ip: str
    tcp: bool
    started: float


class Resolver:
    def __init__(
        self, settings: DnsSettings, local_ipv4: LocalIpv4, *, log_queries: bool = False, now: float = 0.0
    ) -> None:
        self.allowed = NetworkSet(settings.allow_clients)
        self.limiter = RateLimiter(settings.rate_limit, settings.rate_burst)
        self.rate_limit = settings.rate_limit
        self.refusals = RateLimiter(settings.refused_rate, max(1, int(settings.refused_rate)))
        self.refusals_total = RateLimiter(settings.refused_rate_total, max(1, int(settings.refused_rate_total)))
        self.notices = Notices(notice_log, now, what="refused or malformed DNS queries")
        self.rules = Rules(settings.intercept)
        self.cache = Cache(
            settings.cache_size, settings.cache_min_ttl, settings.cache_max_ttl, settings.negative_max_ttl
        )
        self.max_in_flight = settings.max_in_flight
        self.in_flight = 0
        self.local_ipv4 = local_ipv4
        self.log_queries = log_queries
        self.intercepts = InterceptLog()  # what each client was told about intercepted (and vendor) names

    def handle(self, data: bytes, client_ip: str, listener_host: str, now: float, tcp: bool) -> bytes | Forward | None:
        """The reply to send, a `Forward` to resolve upstream, or None to stay silent."""
        if client_ip not in self.allowed:
            return self._refuse(data, client_ip, now, "not in [dns] allow_clients")
        if not self.limiter.allow(client_ip, now):
            return self._refuse(data, client_ip, now, f"over [dns] rate_limit of {self.rate_limit:g}/s")
        try:
            query = parse_query(data)
        except WireError as error:
            self.notices.notice(now, client_ip, "malformed DNS query from %s: %s", client_ip, error)
            return None if error.rcode is None else header_only_reply(data, error.rcode)
        if query.edns_version:
            return self._answer(query, client_ip, build_reply(query, EXTENDED_RCODE_BADVERS), "badvers", tcp)
        rule = self.rules.match(query, client_ip)
        if rule is not None:
            reply = self._local_answer(query, rule, client_ip, listener_host, now)
            self.intercepts.record(client_ip, query.qname, query.qtype, reply, now)
            return self._answer(query, client_ip, reply, "intercepted", tcp)
        if query.qtype == TYPE_ANY:
            return self._answer(query, client_ip, minimal_any(query), "any-minimal", tcp)
        key = (query.qname, query.qtype, query.qclass, query.variant)
        cached = self.cache.get(key, now)
        if cached is not None:
            reply = adapt(cached, query)
            if watched(query.qname):
                self.intercepts.record(client_ip, query.qname, query.qtype, reply, now, intercepted=False)
            return self._answer(query, client_ip, reply, "cached", tcp)
        if self.in_flight >= self.max_in_flight:
            return self._answer(query, client_ip, build_reply(query, RCODE_REFUSED), "over-capacity", tcp)
        self.in_flight += 1
        flags = query.flags & (FLAG_RD | FLAG_CD | FLAG_AD)
        opt = opt_record(query.do) if query.edns else b""
        message = HEADER.pack(0, flags, 1, 0, 0, 1 if opt else 0) + query.question + opt
        return Forward(query, key, message, 12 + len(query.question), client_ip, tcp, now)

    def finish(self, forward: Forward, reply: bytes | None, now: float) -> bytes:
        """The answer for the client of `forward`, given the upstream reply (None: nobody answered)."""
        self.in_flight -= 1
        query = forward.query
        outcome = "forwarded"
        answer: bytes
        if reply is None:
            answer, outcome = build_reply(query, RCODE_SERVFAIL), "no-upstream-answer"
        else:
            try:
                info = inspect_reply(reply)
            except WireError:
                answer, outcome = build_reply(query, RCODE_SERVFAIL), "upstream-malformed"
            else:
                self.cache.put(forward.key, reply, info, now)
                answer = adapt(reply, query)
        if watched(query.qname):
            self.intercepts.record(forward.client_ip, query.qname, query.qtype, answer, now, intercepted=False)
        if self.log_queries:
            query_log.info(
                "client=%s name=%s type=%s %s rcode=%s ms=%.1f", forward.client_ip, name_text(query.qname),
                QTYPE.get(query.qtype), outcome, RCODE.get(answer[3] & 0xF), (now - forward.started) * 1000,
            )
        return fit(answer, query, forward.tcp)

    def _answer(self, query: Query, client_ip: str, reply: bytes, outcome: str, tcp: bool) -> bytes:
        if self.log_queries:
            query_log.info(
                "client=%s name=%s type=%s %s rcode=%s", client_ip, name_text(query.qname),
                QTYPE.get(query.qtype), outcome, RCODE.get(reply[3] & 0xF),
            )
        return fit(reply, query, tcp)

    def _refuse(self, data: bytes, client_ip: str, now: float, why: str) -> bytes | None:
        """REFUSED while the client's and everyone's refusal budgets last, silence beyond: a REFUSED is
        as big as the query, so unlimited ones would let a forged source address aim traffic at a victim."""
        try:
            query = parse_query(data)
        except WireError:
            self.notices.notice(now, client_ip, "ignored a malformed DNS query from %s (%s)", client_ip, why)
            return None
        self.notices.notice(
            now, client_ip, "refused a DNS query from %s for %s %s: %s",
            client_ip, name_text(query.qname), QTYPE.get(query.qtype), why,
        )
        if not (self.refusals.allow(client_ip, now) and self.refusals_total.allow("", now)):
            return None
        return fit(build_reply(query, RCODE_REFUSED), query, tcp=False)

    def _local_answer(self, query: Query, rule: Rule, client_ip: str, listener_host: str, now: float) -> bytes:
        """The rule's address for its own record type; NODATA for every other type, so that an
        intercepted name never leaks to the real cloud over AAAA or HTTPS (reference §1.2)."""
        if query.qclass == CLASS_IN and query.qtype in (rule.record_type, TYPE_ANY):
            packed = rule.packed
            if packed is None:
                local = self.local_ipv4(client_ip, listener_host, now)
                packed = socket.inet_aton(local) if local else None
            if packed is not None:
                record = address_record(rule.record_type, rule.ttl, packed)
                return build_reply(query, RCODE_NOERROR, answers=record, answer_count=1, authoritative=True)
        return build_reply(query, RCODE_NOERROR, authoritative=True)


def minimal_any(query: Query) -> bytes:
    """RFC 8482 §4.2: one synthesized HINFO record instead of everything the name has, so an ANY
    query (the classic amplification request) gets an answer about as small as itself."""
    qclass = query.qclass if query.qclass != TYPE_ANY else CLASS_IN  # QCLASS * (255) is no record class
    return build_reply(query, RCODE_NOERROR, answers=hinfo_record(qclass, ANY_TTL), answer_count=1)


def adapt(reply: bytes, query: Query) -> bytes:
    """An upstream or cached reply re-addressed to this client: its id, its RD bit, its question's case."""
    flags_high = (reply[2] & 0xFE) | ((query.flags >> 8) & 0x01)
    rest = 12 + len(query.question)
    return query.txid.to_bytes(2, "big") + bytes((flags_high,)) + reply[3:12] + query.question + reply[rest:]


def fit(reply: bytes, query: Query, tcp: bool) -> bytes:
    """The reply itself, or over UDP a truncated one when it exceeds what the client accepts."""
    if tcp or len(reply) <= query.udp_limit:
        return reply
    return truncated(reply, query)
