"""The answer cache: through the running responder, and with a hand-held clock for the TTL rules."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from dns_support import UPSTREAM_ADDRESS, FakeUpstream, addresses, ask, rcode
from dnslib import QTYPE, RR, SOA, A, DNSRecord

from interceptor.dns.cache import Cache
from interceptor.dns.wire import inspect_reply, parse_query

Factory = Callable[..., Any]


async def test_second_query_is_served_from_cache_with_ttl_counting_down(
    make_responder: Factory, upstream: FakeUpstream
) -> None:
    server = await make_responder(upstreams=(upstream.address,), cache_max_ttl=100)
    port = server.addresses[0][1]
    first = await ask(port, "ttl5000.Cached.test")
    assert first.answer[0].ttl == 5000  # the first answer is the upstream's own
    second = await ask(port, "TTL5000.cached.TEST", tcp=True)
    assert addresses(second) == [UPSTREAM_ADDRESS]
    assert second.answer[0].ttl <= 100  # ceiling applied to what clients are told
    assert second.question[0].name.to_text() == "TTL5000.cached.TEST."  # the asker's own case
    assert upstream.log.names() == ["ttl5000.cached.test."]


async def test_negative_answers_are_cached(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    for _ in range(3):
        assert rcode(await ask(port, "nx.missing.test")) == "NXDOMAIN"
        nodata = await ask(port, "nodata.missing.test")
        assert rcode(nodata) == "NOERROR" and nodata.answer == []
    assert upstream.log.names() == ["nx.missing.test.", "nodata.missing.test."]


async def test_no_negative_caching_when_turned_off_and_servfail_never_cached(
    make_responder: Factory, make_upstream: Factory
) -> None:
    upstream = await make_upstream()
    server = await make_responder(upstreams=(upstream.address,), negative_max_ttl=0)
    port = server.addresses[0][1]
    for _ in range(2):
        await ask(port, "nx.again.test")
    assert len(upstream.log.queries) == 2
    broken = await make_upstream("servfail")
    server = await make_responder(upstreams=(broken.address,))
    for _ in range(2):
        assert rcode(await ask(server.addresses[0][1], "down.test")) == "SERVFAIL"
    assert len(broken.log.queries) == 2


async def test_do_bit_and_edns_get_separate_entries(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    for _ in range(2):
        await ask(port, "split.test")
        await ask(port, "split.test", edns=True)
        assert (await ask(port, "split.test", dnssec=True)).ednsflags & 0x8000
    assert len(upstream.log.queries) == 3


async def test_concurrent_identical_queries_share_one_upstream_query(
    make_responder: Factory, make_upstream: Factory
) -> None:
    slow = await make_upstream("slow", delay=0.2)
    server = await make_responder(upstreams=(slow.address,))
    port = server.addresses[0][1]
    replies = await asyncio.gather(*(ask(port, "burst.test") for _ in range(5)))
    assert all(addresses(reply) == [UPSTREAM_ADDRESS] for reply in replies)
    assert len({reply.id for reply in replies}) == 5 or len(replies) == 5
    assert len(slow.log.queries) == 1


async def test_expired_answers_are_fetched_again(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    await ask(port, "ttl1.short.test")
    await asyncio.sleep(1.05)
    await ask(port, "ttl1.short.test")
    assert len(upstream.log.queries) == 2


def _reply(name: str, ttl: int, *, nxdomain: bool = False) -> tuple[bytes, bytes]:
    query = DNSRecord.question(name)
    reply = query.reply()
    if nxdomain:
        reply.header.rcode = 3
        reply.add_auth(RR(name, QTYPE.SOA, ttl=ttl, rdata=SOA("ns.", "root.", (1, 2, 3, 4, 600))))
    else:
        reply.add_answer(RR(name, QTYPE.A, ttl=ttl, rdata=A("10.0.0.1")))
    return query.pack(), reply.pack()


def _key(query: bytes) -> tuple[bytes, int, int, int]:
    parsed = parse_query(query)
    return parsed.qname, parsed.qtype, parsed.qclass, parsed.variant


def test_floor_ceiling_and_negative_ttl_with_a_fake_clock() -> None:
    cache = Cache(size=10, min_ttl=30, max_ttl=3600, negative_max_ttl=60)
    query, reply = _reply("floor.test", ttl=5)
    cache.put(_key(query), reply, inspect_reply(reply), now=100.0)
    assert cache.get(_key(query), 129.0) is not None  # the floor keeps it 30 s
    assert cache.get(_key(query), 130.0) is None
    query, reply = _reply("ceiling.test", ttl=86_400)
    cache.put(_key(query), reply, inspect_reply(reply), now=0.0)
    served = cache.get(_key(query), 10.0)
    assert served is not None and DNSRecord.parse(served).rr[0].ttl == 3590
    assert cache.get(_key(query), 3600.0) is None
    query, reply = _reply("nx.test", ttl=900, nxdomain=True)
    cache.put(_key(query), reply, inspect_reply(reply), now=0.0)  # min(SOA TTL 900, MINIMUM 600) capped at 60
    assert cache.get(_key(query), 59.0) is not None and cache.get(_key(query), 60.0) is None


def test_size_cap_evicts_the_least_recently_used() -> None:
    cache = Cache(size=2, min_ttl=0, max_ttl=3600, negative_max_ttl=60)
    keys = []
    for name in ("a.test", "b.test", "c.test"):
        query, reply = _reply(name, ttl=300)
        keys.append(_key(query))
        cache.put(keys[-1], reply, inspect_reply(reply), now=0.0)
        if name == "b.test":
            assert cache.get(keys[0], 1.0) is not None  # a is now more recent than b
    assert len(cache) == 2
    assert cache.get(keys[1], 1.0) is None and cache.get(keys[0], 1.0) is not None
