"""A household with two people in two units, a scale that really talks, and a client for the page."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import time
from datetime import datetime
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
    config = load_config(served.config_path)
    fra = withings_user_id(config.person("fra"))  # type: ignore[arg-type]
    # The page says when in words of the household's day ("yesterday", "this morning"), so each weigh-in
    # keeps to its day whenever the tests run: an hour before now, but never before today's midnight.
    since_midnight = (datetime.now(config.household.zone) - datetime.now(config.household.zone).replace(
        hour=0, minute=0, second=0, microsecond=0)).total_seconds()
    if since_midnight < 60:  # a minute for the day's weigh-ins to fit in, apart
        time.sleep(60 - since_midnight)
        since_midnight = 60
    now = int(time.time())

    def before(seconds: int) -> int:
        return min(seconds, int(since_midnight) * seconds // 3600)

    async def talk() -> None:
        for day in range(FRED_DAYS, 0, -1):
            grams = 86_000 - day * 30 + (day * 37 % 11) * 40
            await scale.weigh_in("127.0.0.1", served.port, userid=2507298, meastime=now - day * 86400 - before(3600),
                                 weight_g=grams)
        for day, grams in ((9, 58_900), (2, 58_300), (0, 57_950)):
            await scale.weigh_in("127.0.0.1", served.port, userid=fra, meastime=now - day * 86400 - before(1800),
                                 weight_g=grams)
        await guest(served, 31_200, now - before(900))
        await guest(served, 120_500, now - before(600))

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
