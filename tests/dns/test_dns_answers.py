"""Interception, split horizon and forwarding, with dnspython and dig against the real responder."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest
from dns_support import UPSTREAM_ADDRESS, FakeUpstream, addresses, ask, rcode, rdtype

from interceptor.dns.settings import InterceptRule
from interceptor.dns.upstreams import UpstreamPool

Factory = Callable[..., Any]


async def test_default_name_is_intercepted_and_other_types_get_nodata(
    make_responder: Factory, upstream: FakeUpstream
) -> None:
    server = await make_responder(
        upstreams=(upstream.address,), intercept=(InterceptRule(address="192.168.1.10"),)
    )
    for host, port in server.addresses:
        for tcp in (False, True):
            reply = await ask(port, "scalews.withings.net", host=host, tcp=tcp)
            assert addresses(reply) == ["192.168.1.10"]
            assert reply.flags & 0x0400  # authoritative
            for qtype in ("AAAA", "HTTPS", "TXT", "CNAME", "MX"):
                empty = await ask(port, "ScaleWS.Withings.NET", qtype, host=host, tcp=tcp)
                assert rcode(empty) == "NOERROR" and empty.answer == [], qtype
                assert empty.question[0].name.to_text() == "ScaleWS.Withings.NET."
    assert upstream.log.queries == []  # nothing about the intercepted name leaked upstream


async def test_auto_answers_the_address_the_query_came_in_on(make_responder: Factory) -> None:
    server = await make_responder(listen=("127.0.0.1:0", "0.0.0.0:0"))
    (_, bound_port), (_, wildcard_port) = server.addresses
    assert addresses(await ask(bound_port, "scalews.withings.net")) == ["127.0.0.1"]
    assert addresses(await ask(wildcard_port, "scalews.withings.net", host="127.0.0.1")) == ["127.0.0.1"]
    assert addresses(await ask(wildcard_port, "scalews.withings.net", host="127.0.0.1", tcp=True)) == ["127.0.0.1"]


async def test_suffix_rules_match_on_label_boundaries(make_responder: Factory, upstream: FakeUpstream) -> None:
    rules = (
        InterceptRule(name="withings.net", subdomains=True, address="10.1.1.1"),
        InterceptRule(name="scalews.withings.net", address="10.2.2.2"),
        InterceptRule(name="v6.test", address="fd00::10"),
    )
    server = await make_responder(upstreams=(upstream.address,), intercept=rules)
    port = server.addresses[0][1]
    assert addresses(await ask(port, "scalews.withings.net")) == ["10.2.2.2"]  # exact beats suffix
    assert addresses(await ask(port, "a.b.withings.net")) == ["10.1.1.1"]
    assert addresses(await ask(port, "withings.net")) == ["10.1.1.1"]
    assert addresses(await ask(port, "evilwithings.net")) == [UPSTREAM_ADDRESS]
    assert addresses(await ask(port, "v6.test", "AAAA")) == ["fd00::10"]
    assert (await ask(port, "v6.test", "A")).answer == []
    assert upstream.log.names() == ["evilwithings.net."]


async def test_split_horizon_only_the_listed_clients_get_the_local_answer(
    make_responder: Factory, upstream: FakeUpstream
) -> None:
    rule = InterceptRule(address="192.168.1.10", clients=("127.0.0.2/32",))
    server = await make_responder(upstreams=(upstream.address,), intercept=(rule,))
    port = server.addresses[0][1]
    assert addresses(await ask(port, "scalews.withings.net", source="127.0.0.2")) == ["192.168.1.10"]
    assert addresses(await ask(port, "scalews.withings.net", source="127.0.0.3")) == [UPSTREAM_ADDRESS]
    assert addresses(await ask(port, "scalews.withings.net", "AAAA", source="127.0.0.4")) == ["fd00::20"]


async def test_forwards_to_dnsmasq(make_responder: Factory, dnsmasq: Callable[[str], int]) -> None:
    port = dnsmasq("address=/example.test/127.0.0.30\nlocal-ttl=60")
    server = await make_responder(upstreams=(f"127.0.0.1:{port}",))
    for host, listen_port in server.addresses:
        assert addresses(await ask(listen_port, "www.example.test", host=host)) == ["127.0.0.30"]
        assert addresses(await ask(listen_port, "www.example.test", host=host, tcp=True)) == ["127.0.0.30"]


async def test_edns_and_do_bit_pass_through(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    plain = await ask(port, "plain.test")
    assert plain.edns < 0
    signed = await ask(port, "signed.test", dnssec=True)
    assert signed.edns == 0 and signed.ednsflags & 0x8000
    sent_plain, sent_signed = upstream.log.queries
    assert sent_plain.ar == []
    (opt,) = sent_signed.ar
    assert opt.rtype == 41 and opt.ttl & 0x8000  # DO reached the upstream


async def test_failover_from_silent_and_closed_upstreams(make_responder: Factory, make_upstream: Factory) -> None:
    silent = await make_upstream("silent")
    good = await make_upstream()
    server = await make_responder(upstreams=(silent.address, "127.0.0.1:9", good.address), cache_size=0)
    port = server.addresses[0][1]
    started = time.monotonic()
    assert addresses(await ask(port, "one.test")) == [UPSTREAM_ADDRESS]
    assert time.monotonic() - started < 1.5
    await ask(port, "two.test")  # second failure puts the silent upstream at the back
    started = time.monotonic()
    assert addresses(await ask(port, "three.test")) == [UPSTREAM_ADDRESS]
    assert time.monotonic() - started < 0.3


async def test_servfail_within_two_seconds_when_nobody_answers(make_responder: Factory, make_upstream: Factory) -> None:
    silent = await make_upstream("silent")
    slow = await make_upstream("slow", delay=3.0)
    server = await make_responder(upstreams=(silent.address, slow.address))
    port = server.addresses[0][1]
    started = time.monotonic()
    udp, tcp = await asyncio.gather(ask(port, "lost.test"), ask(port, "lost.test", tcp=True))
    elapsed = time.monotonic() - started
    assert rcode(udp) == "SERVFAIL" and rcode(tcp) == "SERVFAIL"
    assert 1.5 < elapsed < 2.0


async def test_slow_upstream_within_the_timeout_is_waited_for(make_responder: Factory, make_upstream: Factory) -> None:
    slow = await make_upstream("slow", delay=0.3)
    server = await make_responder(upstreams=(slow.address,))
    assert addresses(await ask(server.addresses[0][1], "slow.test")) == [UPSTREAM_ADDRESS]


async def test_servfail_from_one_upstream_fails_over(make_responder: Factory, make_upstream: Factory) -> None:
    broken = await make_upstream("servfail")
    good = await make_upstream()
    server = await make_responder(upstreams=(broken.address, good.address))
    assert addresses(await ask(server.addresses[0][1], "x.test")) == [UPSTREAM_ADDRESS]


@pytest.mark.parametrize("mode", ["wrong-id", "spoof-first"])
async def test_replies_that_do_not_match_the_query_are_dropped(
    make_responder: Factory, make_upstream: Factory, mode: str
) -> None:
    liar = await make_upstream(mode)
    good = await make_upstream()
    server = await make_responder(upstreams=(liar.address, good.address))
    reply = await ask(server.addresses[0][1], "bank.test")
    assert addresses(reply) == [UPSTREAM_ADDRESS]  # never 6.6.6.6


async def test_truncated_upstream_answer_is_retried_over_tcp(make_responder: Factory, make_upstream: Factory) -> None:
    truncating = await make_upstream("truncate")
    server = await make_responder(upstreams=(truncating.address,))
    port = server.addresses[0][1]
    reply = await ask(port, "big.test", tcp=True)
    assert len(addresses(reply)) == 120
    small = await ask(port, "small.test")
    assert addresses(small) == [UPSTREAM_ADDRESS] and not small.flags & 0x0200


async def test_answer_too_big_for_the_client_sets_tc(make_responder: Factory, upstream: FakeUpstream) -> None:
    server = await make_responder(upstreams=(upstream.address,))
    port = server.addresses[0][1]
    for edns in (False, True):  # 512 bytes without EDNS; dnspython offers 1232 with it
        reply = await ask(port, "big.test", edns=edns)
        assert reply.flags & 0x0200 and reply.answer == []
        assert (reply.edns == 0) is edns
    full = await ask(port, "big.test", tcp=True)
    assert len(addresses(full)) == 120


async def test_dig_against_the_responder(make_responder: Factory, upstream: FakeUpstream) -> None:
    dig = shutil.which("dig")
    if dig is None:
        pytest.fail("dig is not installed: run ./scripts/setup.sh --test (bind9-dnsutils)")
    server = await make_responder(upstreams=(upstream.address,), intercept=(InterceptRule(address="192.168.1.10"),))
    port = str(server.addresses[0][1])
    outputs = []
    for args in (["scalews.withings.net"], ["scalews.withings.net", "AAAA"], ["example.com"], ["+tcp", "example.com"]):
        process = await asyncio.create_subprocess_exec(
            dig, "@127.0.0.1", "-p", port, "+short", "+time=2", "+tries=1", *args, stdout=asyncio.subprocess.PIPE
        )
        stdout, _ = await process.communicate()
        outputs.append(stdout.decode().strip())
    assert outputs == ["192.168.1.10", "", UPSTREAM_ADDRESS, UPSTREAM_ADDRESS]


async def test_https_type_has_its_number(make_responder: Factory) -> None:
    server = await make_responder()
    reply = await ask(server.addresses[0][1], "scalews.withings.net", rdtype("HTTPS"))
    assert rcode(reply) == "NOERROR" and reply.answer == []


async def test_ipv6_upstream_and_tcp_fetched_answer_in_full_over_tcp_only(
    make_responder: Factory, make_upstream: Factory
) -> None:
    """The upstream truncates over UDP, so the 2 kB answer is fetched over TCP from [::1]; a client
    offering 4096 bytes still gets TC over UDP (nothing above 1,232 goes out over UDP) and the whole
    answer, from the cache, over TCP."""
    truncating = await make_upstream("truncate", host="::1")
    server = await make_responder(upstreams=(truncating.address,))
    port = server.addresses[0][1]
    reply = await ask(port, "big.test", edns=True, payload=4096)
    assert reply.flags & 0x0200 and reply.answer == []
    full = await ask(port, "big.test", tcp=True, edns=True, payload=4096)
    assert len(addresses(full)) == 120
    assert [query.q.qname for query in truncating.log.queries].count("big.test.") == 2  # UDP, then TCP


def test_a_resting_upstream_comes_back_first_once_it_answers() -> None:
    pool = UpstreamPool([("127.0.0.1", 5301), ("::1", 5302)])
    primary, secondary = pool.upstreams
    assert str(secondary) == "[::1]:5302"
    pool.failed(primary, now=10.0)
    assert pool.order(10.0) == [primary, secondary]  # one failure is not enough to rest
    pool.failed(primary, now=10.0)
    assert pool.order(10.5) == [secondary, primary]
    assert pool.order(11.0) == [primary, secondary]  # rested 1 s: tried first again
    pool.failed(primary, now=11.0)
    assert pool.order(12.9) == [secondary, primary]  # the rest doubles
    pool.succeeded(primary)
    assert pool.order(12.9) == [primary, secondary]
