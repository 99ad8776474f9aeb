"""Household page: server time of the home page and a person page with 5 years of daily weigh-ins.

A journal gets 5 years of daily weigh-ins (with impedance, so every card and table row carries body
composition) for each of 4 people, through the real pipeline. The real web application (the one
`interceptor serve` starts, with its access checks and listener limits) and a bare aiohttp handler
returning the very same bytes run in this process on loopback; requests alternate between them, and
the difference of the medians is what making the page costs. Floors (issue 13): home and person page
under 50 ms of server time, page weight (HTML + stylesheet) under 100 kB. The person page with body
fat and muscle charts too (on request) is printed for information.

    .venv/bin/python bench/web.py [--years 5] [--people 4] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
from aiohttp import web  # noqa: E402

from interceptor.config import load_config  # noqa: E402
from interceptor.model import Reading  # noqa: E402
from interceptor.pipeline import Pipeline  # noqa: E402
from interceptor.store.journal import Journal  # noqa: E402
from interceptor.users import withings_user_id  # noqa: E402
from interceptor.web.app import Health  # noqa: E402
from interceptor.web.server import start_web  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PEOPLE = [("anna", "female", 165, 62.0), ("ben", "male", 182, 84.0), ("cleo", "female", 158, 51.0),
          ("dan", "male", 175, 97.0)]
FLOOR_MS = 50.0
FLOOR_BYTES = 100_000


def config_text(data_dir: Path, people: int, port: int) -> str:
    text = (f'data_dir = "{data_dir}"\n[household]\ntimezone = "Europe/Paris"\n'
            f'[web]\nlisten = "127.0.0.1:{port}"\nrequests_per_second = 0\n')
    for slug, sex, height, _ in PEOPLE[:people]:
        text += (f'[[users]]\nslug = "{slug}"\nname = "{slug.title()}"\nshort_name = "{slug[:3].upper()}"\n'
                 f'sex = "{sex}"\nbirth_date = "1985-04-02"\nheight_cm = {height}\ngoal_weight_kg = 60\n')
    return text


async def fill(pipeline: Pipeline, years: int, people: int) -> int:
    now = datetime.now(UTC)
    count = 0
    for index, (slug, _, _, weight) in enumerate(PEOPLE[:people]):
        user_id = str(withings_user_id(pipeline.config.person(slug)))  # type: ignore[arg-type]
        batch = []
        for day in range(years * 365, 0, -1):
            taken = now - timedelta(days=day, hours=index + 1)
            batch.append(Reading(source="withings", device_id=f"00:24:e4:00:00:0{index}", device_model="WS-50",
                                 taken_at=taken, received_at=taken, device_user_id=user_id,
                                 values={"weight_kg": weight + 3 * ((day % 90) / 90 - 0.5), "impedance_ohm": 480.0}))
            if len(batch) == 500:
                count += len(await pipeline.ingest_many(batch))
                batch = []
        count += len(await pipeline.ingest_many(batch))
    return count


async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
        assert response.status == 200, (url, response.status, body[:200])
    return (time.perf_counter() - started) * 1000, body


async def main(years: int, people: int, requests: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        config_path = Path(scratch) / "interceptor.toml"
        ours_port = free_port()
        config_path.write_text(config_text(Path(scratch) / "data", people, ours_port))
        config = load_config(config_path, environ={})
        journal = Journal(config.data_dir / "journal.sqlite")
        pipeline = Pipeline(journal, config)
        started = time.perf_counter()
        stored = await fill(pipeline, years, people)
        print(f"journal: {stored} weigh-ins ({people} people x {years} years daily) in "
              f"{time.perf_counter() - started:.1f} s")
        await pipeline.load()

        ours = await start_web(config, journal, pipeline, Health(False, ()), lambda: datetime.now(UTC))

        pages: dict[str, bytes] = {}
        bare_app = web.Application()

        async def bare(request: web.Request) -> web.Response:
            return web.Response(body=pages[request.path_qs], content_type="text/html")

        bare_app.router.add_get("/{tail:.*}", bare)
        bare_runner = web.AppRunner(bare_app, access_log=None)
        await bare_runner.setup()
        bare_port = free_port()
        await web.TCPSite(bare_runner, "127.0.0.1", bare_port).start()

        slug = PEOPLE[0][0]
        paths = ["/", f"/people/{slug}", f"/people/{slug}?range=all", f"/people/{slug}?range=all&show=fat,muscle"]
        async with aiohttp.ClientSession() as session:
            for path in paths:
                _, pages[path] = await timed(session, f"http://127.0.0.1:{ours_port}{path}")
            css = await timed(session, f"http://127.0.0.1:{ours_port}" + _stylesheet(pages["/"]))
            print(f"{'page':42} {'ours ms':>8} {'bare ms':>8} {'server ms':>9} {'p95 ms':>7} {'bytes':>8}")
            failed = False
            for path in paths:
                ours_ms, bare_ms = [], []
                for _ in range(requests):  # alternating, so both see the same machine
                    ours_ms.append((await timed(session, f"http://127.0.0.1:{ours_port}{path}"))[0])
                    bare_ms.append((await timed(session, f"http://127.0.0.1:{bare_port}{path}"))[0])
                server = statistics.median(ours_ms) - statistics.median(bare_ms)
                p95 = statistics.quantiles(ours_ms, n=20)[-1] - statistics.median(bare_ms)
                weight = len(pages[path]) + len(css[1])
                failed |= weight > FLOOR_BYTES or (server > FLOOR_MS and "show=" not in path)  # extras: no floor
                print(f"{path:42} {statistics.median(ours_ms):8.2f} {statistics.median(bare_ms):8.2f} "
                      f"{server:9.2f} {p95:7.2f} {weight:8d}")
        print(f"floors: server time < {FLOOR_MS:.0f} ms, page + stylesheet < {FLOOR_BYTES} bytes:",
              "FAILED" if failed else "met")
        await ours.cleanup()
        await bare_runner.cleanup()
        await asyncio.to_thread(journal.close)


def _stylesheet(html: bytes) -> str:
    start = html.index(b'href="/static/') + len('href="')
    return html[start:html.index(b'"', start)].decode()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--people", type=int, default=4, choices=range(1, 5))
    parser.add_argument("--requests", type=int, default=200)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.years, arguments.people, arguments.requests))
