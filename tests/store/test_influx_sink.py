"""Weigh-ins reach a real influxd through the outbox: tags, fields, timestamps, outages and crashes."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from interceptor.withings import scale
from interceptor.withings.scale import ScaleIdentity
from tests.conftest import HOUSEHOLD_TOML, NO_RATE_LIMIT, Influx, Served, start_server

SCALE = ScaleIdentity(mac="00:24:e4:06:59:dc", battery_pct=42, firmware=1521)


def influx_config(tmp_path: Path, influxd: Influx, **extra: str) -> tuple[Path, str]:
    database = f"scales_{uuid.uuid4().hex[:8]}"
    settings = {"url": influxd.url, "database": database, **extra}
    lines = "\n".join(f'{key} = "{value}"' for key, value in settings.items())
    path = tmp_path / "interceptor.toml"
    path.write_text(HOUSEHOLD_TOML + f"\n[influx]\n{lines}\n")
    return path, database


def count_points(influxd: Influx, database: str, measurement: str = "body") -> int:
    result = influxd.query(f'SELECT count("weight_kg") FROM "{measurement}"', database)["results"][0]
    series = result.get("series")
    return int(series[0]["values"][0][1]) if series else 0


def wait_until(condition, timeout: float = 30.0, what: str = "condition", served: Served | None = None) -> None:
    """Poll; on failure say what was awaited and, given the server, what it logged meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    log = served.log_path.read_text()[-4000:] if served is not None else ""
    raise AssertionError(f"{what} not reached within {timeout} s\n{log}")


def weigh(port: int, meastime: int, weight_g: int, userid: int = 2507298) -> None:
    conversation = asyncio.run(scale.weigh_in("127.0.0.1", port, scale=SCALE, userid=userid, meastime=meastime,
                                              weight_g=weight_g))
    assert conversation.response(2).json()["status"] == 0


@pytest.fixture
def influx_served(tmp_path: Path, influxd: Influx):
    config, database = influx_config(tmp_path, influxd)
    server = start_server(config, tmp_path / "data")
    yield server, database
    server.kill()


def test_a_weigh_in_becomes_a_point_with_the_right_tags_fields_and_time(influx_served, influxd: Influx) -> None:
    served, database = influx_served
    meastime = int(time.time()) - 120
    weigh(served.port, meastime, 86812)
    wait_until(lambda: count_points(influxd, database) == 1, what="the point in InfluxDB")
    result = influxd.query('SELECT * FROM "body"', database)["results"][0]["series"][0]
    row = dict(zip(result["columns"], result["values"][0], strict=True))
    assert row["time"] == meastime
    assert row["weight_kg"] == pytest.approx(86.812)
    assert (row["user"], row["device"], row["model"], row["source"]) == ("fed", SCALE.mac, "WS-50", "withings")
    assert row["method"]
    devices = influxd.query('SELECT "battery_pct", "firmware" FROM "device"', database)["results"][0]["series"][0]
    assert devices["values"][0][1:] == [42, "1521"]


def test_points_wait_in_the_outbox_while_influxd_is_down(tmp_path: Path, influxd: Influx) -> None:
    config, database = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data", env=NO_RATE_LIMIT)  # 101 weigh-ins in seconds
    try:
        now = int(time.time())
        weigh(served.port, now - 5000, 70000)
        wait_until(lambda: count_points(influxd, database) == 1, what="the first point")
        influxd.stop()
        for index in range(100):
            weigh(served.port, now - 4000 + index, 70000 + index)
        time.sleep(1.5)  # let the outbox fail and back off at least once
        influxd.start()
        wait_until(lambda: count_points(influxd, database) == 101, timeout=40, what="all 101 points")
        time.sleep(1.0)
        assert count_points(influxd, database) == 101  # none twice
        weights = influxd.query('SELECT "weight_kg" FROM "body"', database)["results"][0]["series"][0]["values"]
        assert sorted(round(value * 1000) for _, value in weights) == [70000, *range(70000, 70100)]
    finally:
        if influxd.process.poll() is not None:
            influxd.start()
        log = served.kill()
    assert "is unreachable" in log and "kept in the outbox" in log
    assert log.count("is unreachable") == 1  # one line per outage, not one per retry


def test_every_acknowledged_weigh_in_reaches_influx_after_sigkill_under_load(tmp_path: Path, influxd: Influx) -> None:
    """Eight scales weigh in without pause; the server is SIGKILLed in the middle of it. Every weigh-in
    a scale got `status 0` for is in the journal after the restart, and then in InfluxDB, once."""
    config, database = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data", env=NO_RATE_LIMIT)  # eight scales, one address
    first = int(time.time()) - 100_000
    acknowledged: set[int] = set()

    async def scale_loop(index: int, stop: asyncio.Event) -> None:
        identity = ScaleIdentity(mac=f"00:24:e4:00:01:{index:02x}")
        for round_number in range(2000):  # bounded; the kill ends it long before
            if stop.is_set():
                return
            meastime = first + index * 10_000 + round_number
            try:
                conversation = await scale.weigh_in("127.0.0.1", served.port, scale=identity, userid=2507298,
                                                    meastime=meastime, weight_g=60000 + round_number)
            except (OSError, asyncio.IncompleteReadError):
                return  # the server died mid-conversation: that weigh-in was never acknowledged
            if conversation.response(2).json()["status"] == 0:
                acknowledged.add(meastime)

    async def load_then_kill() -> None:
        stop = asyncio.Event()
        scales = [asyncio.create_task(scale_loop(index, stop)) for index in range(8)]
        await asyncio.sleep(1.5)
        served.process.send_signal(signal.SIGKILL)
        stop.set()
        await asyncio.gather(*scales)

    asyncio.run(load_then_kill())
    served.kill()
    assert len(acknowledged) > 20, "the load did not get going before the kill"
    restarted: Served = start_server(config, tmp_path / "data", env=NO_RATE_LIMIT)
    try:
        stored = json.loads(restarted.cli("measurements", "list", "--format", "json").stdout)
        times = {int(datetime.fromisoformat(item["taken_at"]).timestamp()) for item in stored}
        assert acknowledged <= times
        wait_until(lambda: count_points(influxd, database) == len(times), timeout=40, what="every weigh-in",
                   served=restarted)
    finally:
        restarted.kill()


def test_a_missing_database_is_created_and_a_wrong_url_is_one_clear_line(tmp_path: Path, influxd: Influx) -> None:
    config, database = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data")
    weigh(served.port, int(time.time()) - 10, 65000)
    wait_until(lambda: count_points(influxd, database) == 1, what="the point in a database we created")
    served.kill()

    wrong = tmp_path / "wrong"
    wrong.mkdir()
    bad_config, _ = influx_config(wrong, influxd)
    bad_config.write_text(bad_config.read_text().replace(influxd.url, "http://127.0.0.1:9"))
    served = start_server(bad_config, wrong / "data")
    weigh(served.port, int(time.time()) - 10, 65000)
    time.sleep(0.5)
    log = served.kill()
    assert "InfluxDB at http://127.0.0.1:9 is unreachable" in log and "Traceback" not in log
