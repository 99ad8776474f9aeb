"""The HTTP shell the cloud importers share: bounded answers, timeouts, explicit cookies, redirects by hand.

Cookies are never kept in a jar: each request sends exactly the cookies its caller names, as the
reference lists them per step, and the cookies an answer sets are handed back to the caller. Redirects
are followed by hand (`follow`) so a sign-in can read every hop's cookies and headers and stop at the
hop that carries an OAuth `code`, without contacting the app's redirect host. Logs name the method,
the host and path and the status; never a query string, a body, a cookie or a header value.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDictProxy

from interceptor.importers.cloud.errors import CloudError

log = logging.getLogger(__name__)

MAX_ANSWER_BYTES = 16 * 1024 * 1024
MAX_REDIRECTS = 10
TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=15, sock_read=45)
USER_AGENT = "scale-interceptor (history import)"


@dataclass(frozen=True)
class Answer:
    status: int
    url: str
    headers: CIMultiDictProxy[str]
    cookies: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    @property
    def location(self) -> str | None:
        target = self.headers.get("Location")
        return urljoin(self.url, target) if target else None

    @property
    def server_time(self) -> float | None:
        """The server's clock from its `Date` header (the nonce carries minutes: a skewed box is refused)."""
        text = self.headers.get("Date")
        if not text:
            return None
        try:
            return parsedate_to_datetime(text).timestamp()
        except (TypeError, ValueError):
            return None

    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def where(url: str) -> str:
    """Host and path only: queries carry signs and tokens."""
    parts = urlsplit(url)
    return f"{parts.netloc}{parts.path}"


def _cookies(headers: CIMultiDictProxy[str]) -> dict[str, str]:
    jar: dict[str, str] = {}
    for line in headers.getall("Set-Cookie", []):
        parsed: SimpleCookie = SimpleCookie()
        try:
            parsed.load(line)
        except CookieError:
            log.debug("ignored a Set-Cookie header that does not parse")
            continue
        jar.update({name: morsel.value for name, morsel in parsed.items()})
    return jar


class Http:
    """One aiohttp session for one command; `async with Http() as http:`."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self.clock_offset_s = 0.0  # server clock minus ours, from the latest `Date` header

    async def __aenter__(self) -> Http:
        self._session = aiohttp.ClientSession(timeout=TIMEOUT, cookie_jar=aiohttp.DummyCookieJar(),
                                              headers={"User-Agent": USER_AGENT})
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(self, method: str, url: str, *, params: Mapping[str, Any] | None = None,
                      data: Mapping[str, Any] | bytes | None = None,
                      cookies: Mapping[str, str] | None = None,
                      headers: Mapping[str, str] | None = None) -> Answer:
        assert self._session is not None, "use `async with Http()`"
        sent_headers = dict(headers or {})
        if cookies:
            sent_headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        try:
            async with self._session.request(method, url, params=params, data=data,
                                              headers=sent_headers, allow_redirects=False) as response:
                body = await response.content.read(MAX_ANSWER_BYTES + 1)
                if len(body) > MAX_ANSWER_BYTES:
                    raise CloudError(f"{where(url)} sent more than {MAX_ANSWER_BYTES // 2**20} MB; stopped reading "
                                     "(is the URL in [xiaomi] right?)")
                answer = Answer(response.status, str(response.url), response.headers, _cookies(response.headers),
                                body)
        except aiohttp.ClientError as error:
            raise CloudError(f"cannot reach {where(url)}: {type(error).__name__}: {error}; check the network "
                             "(and the URLs in [xiaomi], if you set any)") from None
        except TimeoutError:
            raise CloudError(f"{where(url)} did not answer within {TIMEOUT.total:.0f} s; try again later") from None
        log.debug("%s %s -> %d", method, where(url), answer.status)
        if (server := answer.server_time) is not None:
            self.clock_offset_s = server - time.time()
        return answer

    async def get(self, url: str, **kwargs: Any) -> Answer:
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> Answer:
        return await self.request("POST", url, **kwargs)

    async def follow(self, url: str, *, cookies: Mapping[str, str] | None = None,
                     stop: Callable[[str], bool] | None = None) -> list[Answer]:
        """GET `url` and its redirects; every hop's answer, in order. Cookies set by a hop go to later
        hops on the same host. With `stop`, a Location it accepts is not requested (an OAuth redirect
        to the app: its query is all we need)."""
        answers: list[Answer] = []
        carried: dict[str, dict[str, str]] = {}
        for _ in range(MAX_REDIRECTS + 1):
            host = urlsplit(url).netloc
            answer = await self.get(url, cookies={**(cookies or {}), **carried.get(host, {})})
            answers.append(answer)
            carried.setdefault(host, {}).update(answer.cookies)
            target = answer.location
            if answer.status not in (301, 302, 303, 307, 308) or target is None:
                return answers
            if stop is not None and stop(target):
                return answers
            url = target
        raise CloudError(f"{where(url)} redirected more than {MAX_REDIRECTS} times; the sign-in did not finish")
