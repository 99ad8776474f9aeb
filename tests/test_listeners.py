"""`interceptor.listeners` on its own: any aiohttp application (the Withings cloud, the web page)
gets the guard with one call, and no byte stream a client sends can keep a connection past its
timeouts, crash the listener or stop it answering the next client. Real sockets on loopback."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from interceptor.limits import ListenerLimits
from interceptor.listeners import handling_began, start_listener

FAST = ListenerLimits(idle_timeout=0.2, request_timeout=0.3, rate_limit=1000, rate_burst=1000)


def household_page() -> web.Application:
    """What a web page listener would serve: the guard knows nothing of it."""

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="weigh-ins")

    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_post("/echo", echo)
    return app


async def ask(port: int, request: bytes = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.readuntil(b"weigh-ins"), 2)
    finally:
        writer.close()


async def until_closed(port: int, chunks: list[bytes], limit: float = 3.0) -> float:
    """Send `chunks` as they come, read whatever the server says; seconds until it closed."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
        while await asyncio.wait_for(reader.read(65536), limit):
            pass
    except (ConnectionError, TimeoutError):
        pass
    finally:
        writer.close()
    return time.monotonic() - started


def test_a_web_page_gets_the_guard_with_one_call(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="interceptor.http")

    async def scenario() -> tuple[bytes, float, float]:
        runner = await start_listener(household_page(), "127.0.0.1", 0, FAST)
        port = runner.addresses[0][1]
        try:
            answer = await ask(port)
            idle = await until_closed(port, [])
            stalled = await until_closed(port, [b"GET / HTTP/1.1\r\nHo"])
        finally:
            await runner.cleanup()
        return answer, idle, stalled

    answer, idle, stalled = asyncio.run(scenario())
    assert answer.startswith(b"HTTP/1.1 200") and 0.15 < idle < 1.0 and 0.25 < stalled < 1.0
    assert any("no reply within [http] request_timeout 0.3 s" in record.getMessage() for record in caplog.records)


def slow_page() -> web.Application:
    """A page that takes longer to make than a client may take to send its request, and one that is
    never made in time; the app says when handling begins, as the household page does."""

    @web.middleware
    async def began(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                    ) -> web.StreamResponse:
        handling_began(request)
        return await handler(request)

    async def slow(request: web.Request) -> web.Response:
        await asyncio.sleep(0.6)
        return web.Response(text="weigh-ins")

    async def stuck(request: web.Request) -> web.Response:
        await asyncio.sleep(1.6)  # past handling_timeout; short, as the listener's cleanup waits for it
        return web.Response(text="too late")

    app = web.Application(middlewares=[began])
    app.router.add_get("/", slow)
    app.router.add_get("/stuck", stuck)
    return app


def test_a_handling_timeout_gives_a_slow_page_its_time_and_still_bounds_it(caplog: pytest.LogCaptureFixture) -> None:
    """The web page's case: a client has `request_timeout` to send, the page `handling_timeout` to be
    made. Without one, the request's deadline runs to the reply, as for a scale."""
    caplog.set_level(logging.INFO, logger="interceptor.http")
    limits = ListenerLimits(idle_timeout=2.0, request_timeout=0.3, rate_limit=1000, rate_burst=1000)

    async def scenario() -> tuple[bytes, float, float, float]:
        page = await start_listener(slow_page(), "127.0.0.1", 0, limits, handling_timeout=1.0)
        scale_like = await start_listener(slow_page(), "127.0.0.1", 0, limits)
        port, scale_port = page.addresses[0][1], scale_like.addresses[0][1]
        try:
            made = await ask(port)
            cut = await until_closed(scale_port, [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"])
            stuck = await until_closed(port, [b"GET /stuck HTTP/1.1\r\nHost: x\r\n\r\n"])
            stalled = await until_closed(port, [b"GET / HTTP/1.1\r\nHo"])  # sooner than idle_timeout
        finally:
            await page.cleanup()
            await scale_like.cleanup()
        return made, cut, stuck, stalled

    made, cut, stuck, stalled = asyncio.run(scenario())
    assert made.startswith(b"HTTP/1.1 200") and 0.25 < cut < 0.55 and 0.9 < stuck < 1.4 and 0.25 < stalled < 0.9
    assert any("no reply within 1 s of its handling beginning" in record.getMessage() for record in caplog.records)


CHUNK = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"GET / HTTP/1.1\r\n", b"POST /echo HTTP/1.1\r\n", b"Host: x\r\n", b"Content-Length: 5\r\n",
                     b"Content-Length: 100000\r\n", b"Transfer-Encoding: chunked\r\n", b"Expect: 100-continue\r\n",
                     b"\r\n", b"5\r\nhello\r\n", b"0\r\n\r\n", b"HTTP/1.1 200 OK\r\n", b"GET / HTTP/1.0\r\n\r\n"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CHUNK, max_size=12))
def test_fuzz_no_stream_holds_a_connection_or_stops_the_listener(chunks: list[bytes]) -> None:
    async def scenario() -> tuple[float, bytes]:
        runner = await start_listener(household_page(), "127.0.0.1", 0, FAST)
        port = runner.addresses[0][1]
        try:
            held = await until_closed(port, chunks)
            return held, await ask(port)
        finally:
            await runner.cleanup()

    held, answer = asyncio.run(scenario())
    assert held < FAST.request_timeout + FAST.idle_timeout + 0.5
    assert answer.startswith(b"HTTP/1.1 200")


def test_pipelined_requests_are_counted_one_by_one() -> None:
    """Fifty requests in one write are fifty requests for the rate limit, not one."""
    limits = ListenerLimits(rate_limit=1, rate_burst=10)

    async def scenario() -> bytes:
        runner = await start_listener(household_page(), "127.0.0.1", 0, limits)
        port = runner.addresses[0][1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=("127.0.0.4", 0))
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 5)
            received = await asyncio.wait_for(reader.readuntil(b"weigh-ins"), 2)
            while received.count(b"weigh-ins") < 5:
                received += await asyncio.wait_for(reader.read(65536), 2)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" * 50)
            try:
                while chunk := await asyncio.wait_for(reader.read(65536), 2):
                    received += chunk
            except ConnectionError:
                pass
            return received
        finally:
            writer.close()
            await runner.cleanup()

    received = asyncio.run(scenario())
    assert received.count(b"HTTP/1.1 200") == 5 and received.count(b"HTTP/1.1 429") == 1
