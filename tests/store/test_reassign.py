"""Re-attributing, recomputing and calibrating stored weigh-ins, end to end through journal and InfluxDB."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from interceptor.withings import scale
from tests.conftest import Influx, run_cli, start_server
from tests.store.test_influx_sink import influx_config, wait_until


def users_in_influx(influxd: Influx, database: str) -> list[tuple[int, str, float]]:
    result = influxd.query('SELECT "weight_kg", "user", "bmi" FROM "body"', database)["results"][0]
    return [(row[0], row[2], row[3]) for row in result.get("series", [{"values": []}])[0]["values"]]


def test_assign_moves_the_point_to_the_right_person_and_recomputes(tmp_path: Path, influxd: Influx) -> None:
    config, database = influx_config(tmp_path, influxd)
    data = tmp_path / "data"
    served = start_server(config, data)
    meastime = int(time.time()) - 600
    try:
        # A guest (an id nobody has, a weight nobody is near) steps on the scale.
        asyncio.run(scale.weigh_in("127.0.0.1", served.port, userid=424242, meastime=meastime, weight_g=54350))
        wait_until(lambda: len(users_in_influx(influxd, database)) == 1, what="the guest's point")
        assert users_in_influx(influxd, database)[0][1] == "unassigned"

        def cli(*args: str) -> dict:
            result = run_cli(*args, "--config", str(config), "--data-dir", str(data))
            assert result.returncode == 0, result.stderr
            return json.loads(result.stdout)

        (stored,) = json.loads(run_cli("measurements", "list", "--format", "json", "--config", str(config),
                                       "--data-dir", str(data)).stdout)
        assert stored["user"] is None and stored["metrics"] == {}

        moved = cli("measurements", "assign", str(stored["id"]), "fra")
        assert moved["user"] == "fra" and moved["assigned_by"] == "manual"
        assert moved["metrics"]["bmi"]["value"] > 20  # Franziska is 1.61 m: 54.35 / 1.61² = 20.97
        wait_until(lambda: [row[1] for row in users_in_influx(influxd, database)] == ["fra"], timeout=15,
                   what="the point under fra only")
        (point,) = users_in_influx(influxd, database)
        assert point[0] == meastime and abs(point[2] - 54.35 / 1.61**2) < 1e-9

        back = cli("measurements", "unassign", str(stored["id"]))
        assert back["user"] is None and back["metrics"] == {}
        wait_until(lambda: [row[1] for row in users_in_influx(influxd, database)] == ["unassigned"], timeout=15,
                   what="the point back to unassigned")
    finally:
        served.kill()


def test_recompute_after_a_height_change_and_calibration(tmp_path: Path, config_path: Path) -> None:
    data = tmp_path / "data"
    served = start_server(config_path, data)
    now = int(time.time())
    weights = [86.0, 86.1, 86.2]
    groups = [{"meastime": now - 86400 * (3 - day), "measures": [
        {"value": round(weight * 1000), "type": 1, "unit": -3}, {"value": 559, "type": 16, "unit": 0}]}
        for day, weight in enumerate(weights)]
    try:
        asyncio.run(scale_talk(served.port, scale.ws50_store_body(scale.ScaleIdentity(), "s", 2507298, groups)))
    finally:
        served.kill()

    def listed() -> list[dict]:
        return json.loads(run_cli("measurements", "list", "--format", "json", "--config", str(config_path),
                                  "--data-dir", str(data)).stdout)

    assert [item["metrics"]["bmi"]["value"] for item in listed()] == pytest.approx([w / 2.0**2 for w in weights])
    config_path.write_text(config_path.read_text().replace("height_cm = 200", "height_cm = 180"))
    result = run_cli("recompute", "--user", "fed", "--config", str(config_path), "--data-dir", str(data))
    assert result.returncode == 0 and "recomputed 3 weigh-in(s) of fed" in result.stderr
    assert [item["metrics"]["bmi"]["value"] for item in listed()] == pytest.approx([w / 1.8**2 for w in weights])

    # The vendor app said 18 % on the middle day: that day and later read 18 % + their own change.
    # The date as the household says it (Europe/Paris), which `--date` is read in, not this machine's.
    middle = datetime.fromtimestamp(now - 86400 * 2, ZoneInfo("Europe/Paris")).date().isoformat()
    calibrated = run_cli("calibrate", "--user", "fed", "--body-fat-pct", "18", "--date", middle,
                         "--config", str(config_path), "--data-dir", str(data))
    assert calibrated.returncode == 0, calibrated.stderr
    first, second, third = (item["metrics"]["body_fat_pct"] for item in listed())
    assert second["value"] == pytest.approx(18.0) and second["confidence"] == "calibrated"
    assert third["confidence"] == "calibrated" and first["confidence"] == "literature"

    unknown = run_cli("recompute", "--user", "zed", "--config", str(config_path), "--data-dir", str(data))
    assert unknown.returncode == 2 and "'zed' is not in the household" in unknown.stderr


async def scale_talk(port: int, body: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(scale.request_bytes("/cgi-bin/measure", body))
    await writer.drain()
    response = await scale.read_response(reader)
    writer.close()
    assert response.json()["status"] == 0
