"""The real influxd the InfluxDB tests rely on starts, accepts line protocol and answers InfluxQL."""

from __future__ import annotations

import urllib.request

from tests.conftest import Influx


def test_influxd_round_trip(influxd: Influx) -> None:
    influxd.query("CREATE DATABASE fixture_check")
    request = urllib.request.Request(f"{influxd.url}/write?db=fixture_check&precision=s",
                                     data=b"body,user=anna weight_kg=71.3 1700000000")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 204
    result = influxd.query('SELECT "weight_kg" FROM "body"', "fixture_check")
    assert result["results"][0]["series"][0]["values"] == [[1700000000, 71.3]]
