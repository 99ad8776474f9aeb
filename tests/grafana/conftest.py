"""A database in the session's real influxd, seeded with six weeks of a household's data written the
way docs/schema.md says the sink writes it, for running every dashboard query against."""

from __future__ import annotations

import math
import random
import time
import urllib.request
from dataclasses import dataclass

import pytest

from tests.conftest import Influx

DATABASE = "grafana_dashboards"
DAYS = 42
WS50 = "00:24:e4:06:59:dc"  # a Withings WS-50: weigh-ins, heart rate, room temperature and CO2
MISCALE = "5c:e5:0c:a1:b2:c3"  # a Mi Body Composition Scale 2 heard by the BLE gateway


@dataclass(frozen=True)
class Seed:
    influx: Influx
    database: str
    users: tuple[str, ...]
    start: int  # epoch seconds of the first point
    end: int  # epoch seconds of the last point


def _fields(values: dict[str, float | str]) -> str:
    parts = []
    for key, value in values.items():
        parts.append(f'{key}="{value}"' if isinstance(value, str) else f"{key}={float(value)!r}")
    return ",".join(parts)


def _composition(weight: float, height_m: float, fat_pct: float, method: str) -> dict[str, float | str]:
    """Plausible, internally consistent metrics for one weigh-in (masses add up, water ~ 73 % of FFM)."""
    fat_mass = weight * fat_pct / 100
    fat_free = weight - fat_mass
    metrics: dict[str, float | str] = {
        "bmi": round(weight / height_m**2, 3),
        "body_fat_pct": round(fat_pct, 2),
        "fat_mass_kg": round(fat_mass, 3),
        "fat_free_mass_kg": round(fat_free, 3),
        "water_pct": round(fat_free * 0.73 / weight * 100, 2),
        "muscle_mass_kg": round(fat_free * 0.94 - 2.6, 3),
        "bone_mass_kg": round(fat_free * 0.052, 3),
    }
    if method == "xiaomi":
        metrics |= {
            "skeletal_muscle_mass_kg": round(fat_free * 0.55, 3),
            "protein_pct": round(fat_free * 0.21 / weight * 100, 2),
            "visceral_fat": round(fat_pct / 3.2, 1),
        }
    return metrics


def seed_lines(end: int) -> list[str]:
    """Line protocol for two people and their two scales over DAYS days ending at `end` (deterministic)."""
    rng = random.Random(20261122)
    lines: list[str] = []
    people = {
        # slug: (height m, weight on day 0, kg/day trend, body fat % on day 0, resting pulse)
        "anna": (1.68, 66.4, -0.035, 29.5, 66),
        "ben": (1.81, 88.9, -0.06, 24.8, 58),
    }
    start_day = end - DAYS * 86400
    battery = 93.0
    for day in range(DAYS):
        midnight = start_day - start_day % 86400 + day * 86400
        for slug, (height, weight0, trend, fat0, pulse) in people.items():
            if rng.random() < 0.15:  # nobody weighs in every single day
                continue
            taken_at = midnight + 6 * 3600 + rng.randrange(0, 5400) + (1800 if slug == "ben" else 0)
            if not start_day <= taken_at <= end:
                continue
            weight = weight0 + trend * day + rng.gauss(0, 0.35)
            fat = fat0 + trend * day * 0.4 + rng.gauss(0, 0.4)
            # Weekdays on the WS-50 (Withings protocol, literature equations); weekends on the Mi scale.
            on_ws50 = day % 7 not in (5, 6)
            if on_ws50:
                tags = f"device={WS50},method=literature,model=WS-50,source=withings,user={slug}"
                fields: dict[str, float | str] = {
                    "weight_kg": round(weight, 3),
                    "heart_rate_bpm": float(pulse + rng.randrange(-5, 9)),
                    "withings_type16": float(540 + rng.randrange(0, 40)),
                }
                fields |= _composition(weight, height, fat, "literature")
            else:
                tags = f"device={MISCALE},method=xiaomi,model=MIBFS,source=ble,user={slug}"
                fields = {"weight_kg": round(weight, 2), "impedance_ohm": float(480 + rng.randrange(-30, 30))}
                fields |= _composition(weight, height, fat, "xiaomi")
            fields["ideal_weight_kg"] = round(22.0 * height**2, 3)
            lines.append(f"body,{tags} {_fields(fields)} {taken_at}")
            if on_ws50:
                battery -= 0.2
                lines.append(f'device,device={WS50},model=WS-50,source=withings '
                             f'{_fields({"battery_pct": round(battery), "firmware": "200"})} {taken_at + 19}')
        if day % 7 == 6:  # the gateway reports what the Mi scale says about itself once a week
            lines.append(f'device,device={MISCALE},model=MIBFS,source=ble {_fields({"firmware": "1.0.6"})} '
                         f"{midnight + 12 * 3600}")
    # A guest nobody could attribute.
    lines.append(f"body,device={MISCALE},method=anthropometric,model=MIBFS,source=ble,user=unassigned "
                 f"weight_kg=58.2,bmi=21.38 {end - 3 * 86400}")
    # The WS-50 measures the room every 30 minutes: a day/night temperature cycle, CO2 rising at night.
    for taken_at in range(start_day, end + 1, 1800):
        hour = (taken_at % 86400) / 3600
        temperature = 20.5 + 1.5 * math.sin((hour - 9) / 24 * 2 * math.pi) + rng.gauss(0, 0.15)
        co2 = 520 + (650 if hour < 7 or hour > 22 else 150) * rng.uniform(0.7, 1.1)
        lines.append(f"environment,device={WS50},model=WS-50,source=withings "
                     f"{_fields({'temperature_c': round(temperature, 2), 'co2_ppm': round(co2)})} {taken_at}")
    return lines


@pytest.fixture(scope="session")
def seeded(influxd: Influx) -> Seed:
    end = int(time.time()) // 3600 * 3600 - 3600
    lines = seed_lines(end)
    influxd.query(f'DROP DATABASE "{DATABASE}"')
    influxd.query(f'CREATE DATABASE "{DATABASE}"')
    request = urllib.request.Request(f"{influxd.url}/write?db={DATABASE}&precision=s",
                                     data="\n".join(lines).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 204
    times = [int(line.rsplit(" ", 1)[1]) for line in lines]
    return Seed(influxd, DATABASE, ("anna", "ben"), min(times), max(times))
