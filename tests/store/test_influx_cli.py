"""`interceptor sync influx` rebuilds InfluxDB from the journal; `interceptor doctor` says what is wrong."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from interceptor.store.journal import reader_of
from interceptor.withings import scale
from tests.conftest import Influx, run_cli, start_server
from tests.store.test_influx_sink import count_points, influx_config, wait_until


def test_sync_rebuilds_a_dropped_database(tmp_path: Path, influxd: Influx) -> None:
    """The database is gone (dropped, or never made): `sync influx` creates it as `serve` does."""
    config, database = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data")
    now = int(time.time())
    try:
        for index in range(12):
            asyncio.run(scale.weigh_in("127.0.0.1", served.port, userid=2507298, meastime=now - 9000 + index * 60,
                                       weight_g=80000 + index))
        wait_until(lambda: count_points(influxd, database) == 12, what="12 points", served=served)
    finally:
        served.kill()
    influxd.query(f'DROP DATABASE "{database}"')

    since = time.strftime("%Y-%m-%d", time.gmtime(now - 86400))
    result = run_cli("sync", "influx", "--config", str(config), "--data-dir", str(tmp_path / "data"),
                     "--since", since)
    assert result.returncode == 0, result.stderr
    assert count_points(influxd, database) == 12
    assert "sent 24 point(s)" in result.stderr  # 12 weigh-ins and 12 device reports (one per session)
    again = run_cli("sync", "influx", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert again.returncode == 0 and count_points(influxd, database) == 12  # idempotent


def test_sync_against_an_unreachable_influx_fails_with_one_line_saying_what_to_do(tmp_path: Path,
                                                                                   influxd: Influx) -> None:
    config, _ = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data")
    asyncio.run(scale.weigh_in("127.0.0.1", served.port, meastime=int(time.time()) - 60, weight_g=80000))
    served.kill()
    with reader_of(tmp_path / "data" / "journal.sqlite") as reader:
        owed = reader.outbox_size("influx")  # what serve had not delivered yet when it stopped
    config.write_text(config.read_text().replace(influxd.url, "http://127.0.0.1:9"))
    result = run_cli("sync", "influx", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert result.returncode == 1
    assert "is unreachable" in result.stderr and "0 of 2 point(s) sent" in result.stderr  # weigh-in, battery
    assert "then run it again" in result.stderr
    assert "Traceback" not in result.stderr
    again = run_cli("sync", "influx", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert "0 of 2 point(s) sent" in again.stderr  # a failed sync queues nothing: the count does not grow
    with reader_of(tmp_path / "data" / "journal.sqlite") as reader:
        assert reader.outbox_size("influx") == owed  # sync leaves serve's outbox alone


def test_doctor_finds_the_server_where_it_listens_and_leaves_influx_untouched(tmp_path: Path,
                                                                              influxd: Influx) -> None:
    """`serve --http-listen` on a port the config does not name: doctor finds it (serve's state file), and
    checks InfluxDB with an empty write: no marker point, no database created."""
    config, database = influx_config(tmp_path, influxd)
    served = start_server(config, tmp_path / "data")  # --http-listen 127.0.0.1:<free port>, --no-dns
    try:
        healthy = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
        influxd.query(f'DROP DATABASE "{database}"')
        missing = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    finally:
        served.kill()
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert f"ok    http: interceptor answers the scale's requests on 127.0.0.1:{served.port}" in healthy.stdout
    assert f"ok    server: `interceptor serve` (pid {served.process.pid}) running since" in healthy.stdout
    assert f"accepts writes to database '{database}'" in healthy.stdout
    assert missing.returncode == 1 and f"FAIL  influxdb: InfluxDB at {influxd.url} has no database" in missing.stdout
    names = [row[0] for item in influxd.query("SHOW DATABASES")["results"][0]["series"] for row in item["values"]]
    assert database not in names  # doctor did not create it (serve does, when it starts)

    stopped = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert "FAIL  server: `interceptor serve` is not running: it stopped at" in stopped.stdout
    config.write_text(config.read_text().replace(influxd.url, "http://127.0.0.1:9"))
    broken = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert broken.returncode == 1
    assert "FAIL  influxdb: InfluxDB at http://127.0.0.1:9 is unreachable" in broken.stdout


def test_doctor_never_writes_a_point(tmp_path: Path, influxd: Influx) -> None:
    config, database = influx_config(tmp_path, influxd)
    influxd.query(f'CREATE DATABASE "{database}"')
    result = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"), "--check", "influxdb")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "series" not in influxd.query("SHOW MEASUREMENTS", database)["results"][0]


def test_doctor_checks_the_dns_answer_for_the_scale(tmp_path: Path) -> None:
    from tests.conftest import free_port

    port = free_port()
    config = tmp_path / "interceptor.toml"
    config.write_text(f'[dns]\nlisten = ["127.0.0.1:{port}"]\nupstreams = ["127.0.0.1:9"]\n'
                      f'[http]\nlisten = "127.0.0.1:{free_port()}"\n')
    silent = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
    assert f"FAIL  dns: nothing answers DNS on 127.0.0.1:{port}" in silent.stdout

    import subprocess

    from tests.conftest import INTERCEPTOR

    dns = subprocess.Popen([str(INTERCEPTOR), "dns", "--config", str(config)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        answered = None
        for _ in range(50):
            answered = run_cli("doctor", "--config", str(config), "--data-dir", str(tmp_path / "data"))
            if "ok    dns:" in answered.stdout:
                break
            time.sleep(0.2)
    finally:
        dns.terminate()
        dns.wait(timeout=10)
    assert answered is not None and "answers scalews.withings.net with 127.0.0.1" in answered.stdout
