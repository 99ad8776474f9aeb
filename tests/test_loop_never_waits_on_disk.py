"""The event loop that answers scales also answers DNS for the whole house: while a journal write is
stuck (an fsync on a dying SD card), DNS queries are still answered at once, and the scale's weigh-in
is acknowledged only once its commit is done."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from aiohttp import web

from interceptor.app import JOURNAL, create_app
from interceptor.config import load_config
from interceptor.dns.server import start_dns_server
from interceptor.withings import scale
from tests.conftest import HOUSEHOLD_TOML, free_port
from tests.dns.dns_support import addresses, ask


async def test_dns_is_answered_while_a_journal_write_is_blocked(tmp_path: Path) -> None:
    dns_port, http_port, web_port = free_port(), free_port(), free_port()
    config_path = tmp_path / "interceptor.toml"
    config_path.write_text(HOUSEHOLD_TOML + f'\n[dns]\nlisten = ["127.0.0.1:{dns_port}"]\nupstreams = ["127.0.0.1:9"]\n'
                           f'\n[web]\nenabled = false\nlisten = "127.0.0.1:{web_port}"\n', encoding="utf-8")
    config = load_config(config_path, environ={}, overrides={"data_dir": str(tmp_path / "data")})
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    dns = await start_dns_server(config.dns)  # on the same event loop, as `interceptor serve` runs it
    release = threading.Event()
    try:
        stuck = app[JOURNAL]._writer.submit(lambda tx: release.wait(10))  # the writer thread is now busy
        weigh_in = asyncio.ensure_future(scale.weigh_in("127.0.0.1", http_port, userid=2507298,
                                                        meastime=int(time.time()) - 60, weight_g=80_000))
        await asyncio.sleep(0.3)  # the scale has opened its session and posted its weigh-in
        assert not weigh_in.done()  # no status 0 before the weigh-in is committed
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            answer = await ask(dns_port, "scalews.withings.net", timeout=2.0)
            latencies.append(time.perf_counter() - started)
            assert addresses(answer)  # answered with this box's address
        assert max(latencies) < 0.25, latencies
        assert not weigh_in.done()
        release.set()
        conversation = await asyncio.wait_for(weigh_in, 10)
        assert conversation.response(2).json()["status"] == 0
        assert stuck.result() is True
        with app[JOURNAL].reader() as reader:
            assert reader.count() == 1
    finally:
        release.set()
        await dns.close()
        await runner.cleanup()
