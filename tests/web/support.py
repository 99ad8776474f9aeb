"""A household with two people in two units, a scale that really talks, and a client for the page."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from pathlib import Path

import aiohttp

from interceptor.config import load_config
from interceptor.users import withings_user_id
from interceptor.withings import scale
from tests.conftest import HOUSEHOLD_TOML, Served

# Fred reads kilograms (the household's unit); Franziska reads stones, and has a goal.
WEB_HOUSEHOLD_TOML = HOUSEHOLD_TOML.replace("height_cm = 161\n",
                                            'height_cm = 161\nweight_unit = "st"\ngoal_weight_kg = 55\n')
FRED_DAYS = 40
GUEST_USERID = 424242  # an id no person has, so a weigh-in far from everyone stays unclaimed


def write_config(directory: Path, extra: str = "") -> Path:
    path = directory / "interceptor.toml"
    path.write_text(WEB_HOUSEHOLD_TOML + extra, encoding="utf-8")
    return path


def fill(served: Served) -> None:
    """Real conversations with the scale stand-in: Fred daily for 40 days, Franziska three times, and two
    weigh-ins nobody can be given (a guest of 31.2 kg and one of 120.5 kg)."""
    fra = withings_user_id(load_config(served.config_path).person("fra"))  # type: ignore[arg-type]
    now = int(time.time())

    async def talk() -> None:
        for day in range(FRED_DAYS, 0, -1):
            grams = 86_000 - day * 30 + (day * 37 % 11) * 40
            await scale.weigh_in("127.0.0.1", served.port, userid=2507298, meastime=now - day * 86400 - 3600,
                                 weight_g=grams)
        for day, grams in ((9, 58_900), (2, 58_300), (0, 57_950)):
            await scale.weigh_in("127.0.0.1", served.port, userid=fra, meastime=now - day * 86400 - 1800,
                                 weight_g=grams)
        await guest(served, 31_200, now - 900)
        await guest(served, 120_500, now - 600)

    # On a thread of its own: Playwright's synchronous API keeps an event loop running in the test's thread.
    with concurrent.futures.ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, talk()).result()


async def guest(served: Served, grams: int, meastime: int) -> None:
    await scale.weigh_in("127.0.0.1", served.port, userid=GUEST_USERID, meastime=meastime, weight_g=grams)


def client() -> aiohttp.ClientSession:
    # unsafe: keep cookies for an IP address host (127.0.0.1), as a browser does
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def csrf_token(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/api/v1/session") as response:
        assert response.status == 200
        return (await response.json())["csrf_token"]


def hidden_csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert match, "the page carries no CSRF token"
    return match.group(1)
