"""Zepp Life (Huami) cloud: sign-in with a Xiaomi or a Zepp account, family members, weight history.

Steps and fields are the reference's (cloud-and-formats.md §2): a Xiaomi sign-in ends in an OAuth
code that `account.zepp.com/v2/client/login` exchanges (`grant_type=request_token`,
`third_name=xiaomi-hm-mifit`); a Zepp account's password goes to
`api-user.huami.com/registrations/{email}/tokens`, whose redirect carries `access`, exchanged at
`account.huami.com/v2/client/login` (`grant_type=access_token`, `third_name=huami`; huami-token
`urls.py`, `huami_token.py` @0a0794d). Either way the answer's `token_info` holds `app_token` and
`user_id`, sent as header `apptoken` to `api-mifit.zepp.com`. Signing in this way signs the phone
app out (SmartScaleConnect README), so the token is kept (`zepp-session.json`, 0600) and reused
until Zepp refuses it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.http import Answer, Http, where
from interceptor.importers.cloud.secretfile import read_secret, remove_secret, write_secret
from interceptor.importers.xiaomi.account import ZEPP_OAUTH_QUERY, Account
from interceptor.importers.xiaomi.settings import XiaomiSettings

log = logging.getLogger(__name__)

FILE_NAME = "zepp-session.json"
PAGE_LIMIT = 200  # the maximum per SmartScaleConnect
MAX_PAGES = 10_000
OWNER_MEMBER = "-1"
EXPIRED_STATUSES = (401, 403)
SIGN_IN = ("sign in again: `interceptor import zepp --xiaomi-account USER` or `--zepp-account EMAIL` "
           "(this signs the Zepp Life app on your phone out)")

XIAOMI_EXCHANGE = {"app_name": "com.xiaomi.hm.health", "app_version": "6.14.0", "country_code": "CN",
                   "device_model": "phone", "dn": "api-mifit.zepp.com", "grant_type": "request_token",
                   "third_name": "xiaomi-hm-mifit"}
ZEPP_PASSWORD = {"state": "REDIRECTION", "client_id": "HuaMi",
                 "redirect_uri": "https://s3-us-west-2.amazonws.com/hm-registration/successsignin.html",
                 "region": "us-west-2", "token": "access", "country_code": "US"}
ZEPP_EXCHANGE = {"dn": "account.huami.com,api-user.huami.com,app-analytics.huami.com,api-watch.huami.com,"
                       "api-analytics.huami.com,api-mifit.huami.com",
                 "app_version": "5.9.2-play_100355", "source": "com.huami.watch.hmwatchmanager", "third_name": "huami",
                 "lang": "en", "device_model": "android_phone", "allow_registration": "false",
                 "app_name": "com.huami.midong", "grant_type": "access_token"}


class ZeppExpired(CloudError):
    """Zepp refused the stored app token."""


@dataclass(frozen=True)
class ZeppSession:
    user_id: str
    app_token: str = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "app_token": self.app_token}


class ZeppStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def load(self) -> ZeppSession | None:
        value = read_secret(self.path, SIGN_IN)
        if value is None:
            return None
        if not isinstance(value.get("user_id"), str) or not isinstance(value.get("app_token"), str):
            raise CloudError(f"{self.path} is incomplete: {SIGN_IN}")
        return ZeppSession(value["user_id"], value["app_token"])

    def save(self, session: ZeppSession) -> None:
        write_secret(self.path, session.to_json())

    def remove(self) -> bool:
        return remove_secret(self.path)


def _json(answer: Answer, what: str) -> dict[str, Any]:
    try:
        value = json.loads(answer.body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CloudError(f"Zepp answered {what} with something that is not JSON (HTTP {answer.status}); "
                         "try again later") from None
    if not isinstance(value, dict):
        raise CloudError(f"Zepp answered {what} with JSON that is not an object")
    return value


def _session(answer: Answer, what: str) -> ZeppSession:
    reply = _json(answer, what)
    info = reply.get("token_info")
    if not isinstance(info, dict) or not info.get("app_token") or not info.get("user_id"):
        log.warning("zepp: %s answered HTTP %d without token_info (keys %s, error_code %r)", what, answer.status,
                    ", ".join(sorted(reply))[:200], reply.get("error_code"))
        raise CloudError(f"Zepp refused the sign-in at {what} (error {reply.get('error_code', answer.status)}); "
                         "check the account and try again later")
    return ZeppSession(str(info["user_id"]), str(info["app_token"]))


async def sign_in_xiaomi(http: Http, account: Account, settings: XiaomiSettings, user: str,
                         password: str) -> ZeppSession:
    code = await account.oauth_code(user, password, dict(ZEPP_OAUTH_QUERY))
    form = {**XIAOMI_EXCHANGE, "code": code, "device_id": str(uuid.uuid4())}
    return _session(await http.post(settings.zepp_login_url, data=form), "the Xiaomi-account token exchange")


async def sign_in_zepp(http: Http, settings: XiaomiSettings, email: str, password: str) -> ZeppSession:
    answer = await http.post(f"{settings.zepp_registrations_url}/{quote(email, safe='@')}/tokens",
                             data={**ZEPP_PASSWORD, "password": password})
    query = parse_qs(urlsplit(answer.location or "").query)
    if "error" in query or "access" not in query:
        log.debug("zepp: the password step answered HTTP %d, redirect parameters %s", answer.status,
                 ", ".join(sorted(query)) or "none")
        raise CloudError("Zepp did not accept this e-mail and password; check them in the Zepp Life app "
                         "(a Xiaomi account signs in with --xiaomi-account instead)")
    country = query.get("country_code", [None])[0] or (query.get("region", ["us"])[0] or "us")[:2].upper()
    form = {**ZEPP_EXCHANGE, "code": query["access"][0], "country_code": country, "device_id": str(uuid.uuid4())}
    return _session(await http.post(settings.zepp_email_login_url, data=form), "the Zepp-account token exchange")


async def _authorised(http: Http, method: str, url: str, session: ZeppSession, **kwargs: Any) -> dict[str, Any]:
    answer = await http.request(method, url, headers={"apptoken": session.app_token}, **kwargs)
    if answer.status in EXPIRED_STATUSES:
        raise ZeppExpired(f"Zepp no longer accepts the saved sign-in (HTTP {answer.status}): {SIGN_IN}")
    if answer.status != 200:
        raise CloudError(f"Zepp answered HTTP {answer.status} at {where(url)}; try again later")
    return _json(answer, where(url))


async def family(http: Http, settings: XiaomiSettings, session: ZeppSession) -> dict[str, str]:
    """Member id → nickname, for the account's scale family (reference §2 "Family members")."""
    reply = await _authorised(http, "POST", f"{settings.zepp_url}/huami.health.scale.familymember.get.json",
                              session, data={"fuid": "all", "userid": session.user_id})
    entries = (reply.get("data") or {}).get("list") if isinstance(reply.get("data"), dict) else None
    members = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("fuid") is not None and isinstance(entry.get("nickname"), str):
            members[str(entry["fuid"])] = entry["nickname"]
    return members


async def weight_pages(http: Http, settings: XiaomiSettings, session: ZeppSession, member: str, now_s: int,
                       since_s: int | None) -> AsyncIterator[list[Any]]:
    """One member's records, newest first: `toTime` from now, then `next`, until `next` is 0."""
    to_time = now_s
    url = f"{settings.zepp_url}/users/{quote(session.user_id)}/members/{quote(member)}/weightRecords"
    for _ in range(MAX_PAGES):
        reply = await _authorised(http, "GET", url, session, params={"limit": PAGE_LIMIT, "toTime": to_time})
        items = reply.get("items")
        if isinstance(items, list) and items:
            yield items
        following = reply.get("next")
        if not isinstance(following, int) or isinstance(following, bool) or following <= 0 or following >= to_time:
            return
        if since_s is not None and following < since_s:
            return
        to_time = following
    log.warning("zepp: stopped after %d pages of member %s", MAX_PAGES, member)
