"""Walking a scale's history page by page, newest first, and which cloud keeps it.

Xiaomi Home (reference §1.2 A/B): `beginTime` is the newer bound (now, in ms, on the first call),
`endTime` 1; 20 records a page; the next page starts at the 20th record's `createTime`, which may
come back again (whether `beginTime` is inclusive is not documented), so a record seen on the page
before is dropped. Outside China `getUserDataByPage` with a string `uid` and header
`MIOT-REQUEST-MODEL`; in China `getData` with `param` and a numeric `uid`.
Mi Fitness (§1.2 C): `get_fitness_data_by_time` from `start_time` to `end_time` (now + 24 h, in s),
then `next_key` while `has_more`.
Which: Xiaomi Home for every scale in the account's device list, except models only Mi Fitness
keeps (§1.1); Mi Fitness when the device list has no scale (the scale was paired in Mi Fitness).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

from interceptor.importers.xiaomi.client import XiaomiApi
from interceptor.importers.xiaomi.devices import MI_FITNESS_ONLY, CloudDevice
from interceptor.importers.xiaomi.settings import CHINA

log = logging.getLogger(__name__)

HOME_PAGE = 20
MAX_PAGES = 10_000  # 200,000 weigh-ins: a bound on a loop whose end the cloud decides
HOME_PATH = "/eco/common/scale/getUserDataByPage"
HOME_PATH_CHINA = "/eco/scale/getData"
FITNESS_PATH = "/app/v1/data/get_fitness_data_by_time"
DAY_S = 86_400

Choice = Literal["auto", "home", "fitness"]


@dataclass(frozen=True)
class Source:
    """One history to walk: Xiaomi Home for one scale model, or the account's Mi Fitness weigh-ins."""

    service: Literal["home", "fitness"]
    model: str | None = None
    scales: tuple[CloudDevice, ...] = ()

    def label(self, user_id: str) -> tuple[str, str]:
        """What the summary calls it: the cloud, and the scale model or the account."""
        return ("Xiaomi Home", str(self.model)) if self.service == "home" else ("Mi Fitness", f"account {user_id}")


def plan(scales: list[CloudDevice], choice: Choice) -> list[Source]:
    if choice == "fitness":
        return [Source("fitness", scales=tuple(scales))]
    by_model: dict[str, list[CloudDevice]] = {}
    for scale in scales:
        by_model.setdefault(scale.model, []).append(scale)
    sources = [Source("home", model, tuple(found)) for model, found in sorted(by_model.items())
               if choice == "home" or model not in MI_FITNESS_ONLY]
    if choice == "auto" and (not scales or any(scale.model in MI_FITNESS_ONLY for scale in scales)):
        sources.append(Source("fitness", scales=tuple(scale for scale in scales if scale.model in MI_FITNESS_ONLY)))
    return sources


def home_request(region: str, model: str, user_id: str, begin_ms: int) -> tuple[str, dict[str, Any], dict[str, str]]:
    """Path, data and headers of one Xiaomi Home page (reference §1.2 A and B, exact key order)."""
    headers = {"MIOT-REQUEST-MODEL": model}
    if region == CHINA:
        return HOME_PATH_CHINA, {"param": {"endTime": 1, "beginTime": begin_ms}, "model": model,
                                 "uid": int(user_id) if user_id.isdigit() else user_id, "did": 0}, headers
    return HOME_PATH, {"endTime": 1, "beginTime": begin_ms, "model": model, "uid": user_id, "did": 0,
                       "accountId": 0}, headers


def _create_time(item: Any) -> int | None:
    value = item.get("createTime") if isinstance(item, dict) else None
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


async def home_pages(api: XiaomiApi, model: str, now_ms: int, since_ms: int | None) -> AsyncIterator[list[Any]]:
    """Each page's records, newest first, without the boundary repeat; stops at `since_ms`."""
    begin = now_ms
    previous: set[int] = set()
    for _ in range(MAX_PAGES):
        path, data, headers = home_request(api.region, model, api.session.user_id, begin)
        result = await api.call("home", path, data, headers=headers)
        if not isinstance(result, list):
            log.warning("xiaomi: %s answered a %s, not a list of records; stopping", path, type(result).__name__)
            return
        fresh = [item for item in result if _create_time(item) not in previous]
        if fresh:
            yield fresh
        times = [time for item in result if (time := _create_time(item)) is not None]
        if len(result) < HOME_PAGE or not times:
            return
        oldest = min(times)
        if oldest >= begin or (since_ms is not None and oldest < since_ms):
            return  # no progress (a cloud that ignores beginTime), or older than asked for
        previous = set(times)
        begin = oldest
    log.warning("xiaomi: stopped after %d pages of %s history", MAX_PAGES, model)


async def fitness_pages(api: XiaomiApi, now_s: int, since_s: int | None) -> AsyncIterator[list[Any]]:
    data: dict[str, Any] = {"start_time": since_s or 1, "end_time": now_s + DAY_S, "key": "weight"}
    seen_keys: set[str] = set()
    for _ in range(MAX_PAGES):
        result = await api.call("fitness", FITNESS_PATH, data)
        if not isinstance(result, dict):
            log.warning("xiaomi: Mi Fitness answered a %s, not a page; stopping", type(result).__name__)
            return
        items = result.get("data_list")
        if isinstance(items, list) and items:
            yield items
        next_key = result.get("next_key")
        if not result.get("has_more") or not next_key or str(next_key) in seen_keys:
            return
        seen_keys.add(str(next_key))
        data = {**data, "next_key": next_key}
    log.warning("xiaomi: stopped after %d pages of Mi Fitness history", MAX_PAGES)
