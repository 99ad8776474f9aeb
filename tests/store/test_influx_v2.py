"""The `v2` dialect: the real influxdb-client writes through a /api/v2/write shim into the real influxd."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from threading import Thread

import pytest
from aiohttp import web

from interceptor.withings import scale
from tests.conftest import HOUSEHOLD_TOML, Influx, free_port, start_server
from tests.store.test_influx_sink import count_points, wait_until
from tests.store.v2shim import make_shim

TOKEN = "s3cret-token-for-tests"


@pytest.fixture
def shim(influxd: Influx) -> Iterator[str]:
    """The shim on its own loop in a thread, so the interceptor process can reach it over real TCP."""
    port = free_port()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(make_shim(influxd.url, TOKEN))
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=10)
    loop.run_until_complete(runner.cleanup())
    loop.close()


def v2_config(tmp_path: Path, url: str, token: str, bucket: str) -> Path:
    path = tmp_path / "interceptor.toml"
    path.write_text(HOUSEHOLD_TOML + f'\n[influx]\ndialect = "v2"\nurl = "{url}"\ntoken = "{token}"\n'
                    f'org = "home"\nbucket = "{bucket}"\n')
    return path


def test_v2_dialect_delivers_through_influxdb_client(tmp_path: Path, influxd: Influx, shim: str) -> None:
    bucket = f"scales_{uuid.uuid4().hex[:8]}"
    influxd.query(f'CREATE DATABASE "{bucket}"')
    served = start_server(v2_config(tmp_path, shim, TOKEN, bucket), tmp_path / "data")
    meastime = int(time.time()) - 30
    try:
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, userid=2507298, meastime=meastime, weight_g=86812))
        wait_until(lambda: count_points(influxd, bucket) == 1, what="the point written by influxdb-client")
    finally:
        log = served.kill()
    series = influxd.query('SELECT "weight_kg", "user" FROM "body"', bucket)["results"][0]["series"][0]
    assert series["values"] == [[meastime, 86.812, "fed"]]
    assert TOKEN not in log


def test_v2_wrong_token_is_one_clear_line_and_nothing_is_lost(tmp_path: Path, influxd: Influx, shim: str) -> None:
    bucket = f"scales_{uuid.uuid4().hex[:8]}"
    influxd.query(f'CREATE DATABASE "{bucket}"')
    data = tmp_path / "data"
    served = start_server(v2_config(tmp_path, shim, "wrong-token", bucket), data)
    try:
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 30, weight_g=70000))
        time.sleep(1.0)
    finally:
        log = served.kill()
    assert "refused the token" in log and "check [influx] token" in log and "wrong-token" not in log
    assert count_points(influxd, bucket) == 0

    fixed = start_server(v2_config(tmp_path, shim, TOKEN, bucket), data)
    try:
        wait_until(lambda: count_points(influxd, bucket) == 1, what="the queued point after the token fix")
    finally:
        fixed.kill()
