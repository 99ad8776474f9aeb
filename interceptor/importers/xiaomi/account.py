"""Signing in to the Xiaomi account: password, captcha, two-factor code, pass-token renewal, OAuth.

The steps and their fields are the reference's (cloud-and-formats.md §1.5, after XiaomiGateway3
`core/xiaomi_cloud.py` and SmartScaleConnect `pkg/xiaomi/auth.go`):

1. `GET /pass/serviceLogin?_json=true&sid=S` → `_sign, qs, sid, callback` (every account answer
   starts with `&&&START&&&`);
2. `POST /pass/serviceLoginAuth2` with `hash` = upper-case MD5 of the password and cookies
   `sdkVersion`, `deviceId` → `ssecurity, userId, passToken, location`; or `captchaUrl` (the image,
   cookie `ick`, then step 2 again with `captCode`); or `notificationUrl` (two-factor: `identity/list`
   → flag 4 phone / 8 e-mail and cookie `identity_session` → `verify{Phone,Email}` →
   `send{Phone,Email}Ticket` → the code the user types → `verify{Phone,Email}` → `location`, whose
   redirects carry `passToken`/`userId` cookies and an `extension-pragma` header with `ssecurity`);
3. `GET location` → `ok` and cookies `userId`, `cUserId`, `serviceToken`.

Renewal: step 1 with cookies `userId` and `passToken` answers like a successful step 2. The user's
password and codes go to the account server only; nothing here logs a value, only which step
answered what.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.http import Answer, Http, where
from interceptor.importers.cloud.secretfile import FILE_MODE
from interceptor.paths import private_dir

log = logging.getLogger(__name__)

AUTH_PREFIX = b"&&&START&&&"
SDK_VERSION = "4.2.29"  # what XiaomiGateway3 sends (reference §1.5 step 2)
FLAG_PHONE = 4
FLAG_EMAIL = 8
MAX_CAPTCHAS = 3
DESCRIPTION_CHARS = 120
# Zepp Life's Xiaomi OAuth2 client (reference §2, SmartScaleConnect `pkg/zepp/auth.go`).
ZEPP_OAUTH_QUERY = {
    "_json": "true", "client_id": "428135909242707968", "pt": "1",
    "redirect_uri": "https://api-mifit-cn.huami.com/huami.health.loginview.do", "response_type": "code",
}

CODE_BAD_PASSWORD = 70016
CODE_BAD_CAPTCHA = 87001
CODE_SYSTEM_ERROR = 10001

BROWSER_HINT = "sign in once at https://account.xiaomi.com in a browser from this network"
TOKEN_HINT = "or use `interceptor xiaomi login --pass-token USERID:PASSTOKEN` if you have a pass token"


class SignInExpired(CloudError):
    """The pass token is no longer accepted: only a new sign-in helps."""


@dataclass(frozen=True)
class Credentials:
    """What a sign-in yields for one service."""

    user_id: str
    pass_token: str = field(repr=False)
    ssecurity: str = field(repr=False)
    service_token: str = field(repr=False)
    c_user_id: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Prompts:
    """How the command asks the person at the keyboard: the captcha's text (its image is at the
    path), and the code Xiaomi sent to the masked phone number or address."""

    captcha: Callable[[Path], str]
    code: Callable[[str], str]


def parse_auth(body: bytes, step: str) -> dict[str, Any]:
    """An account answer: `&&&START&&&` then a JSON object."""
    text = body.removeprefix(AUTH_PREFIX)
    try:
        value = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("xiaomi: %s answered %d bytes that are not JSON (starts %r)", step, len(body), body[:24])
        raise CloudError(f"the Xiaomi account server answered {step} with something that is not JSON; "
                         "try again later (or check [xiaomi] account_url)") from None
    if not isinstance(value, dict):
        raise CloudError(f"the Xiaomi account server answered {step} with JSON that is not an object")
    return value


def password_hash(password: str) -> str:
    return hashlib.md5(password.encode()).hexdigest().upper()


def device_id() -> str:
    """The random `deviceId` cookie of step 2, as the apps make it (16 upper-case letters and digits)."""
    alphabet = string.ascii_uppercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def _description(answer: dict[str, Any]) -> str:
    text = str(answer.get("description") or answer.get("desc") or "").strip()
    return text[:DESCRIPTION_CHARS]


def refusal(answer: dict[str, Any], step: str) -> CloudError:
    """The sentence for an account answer that is not a success (reference §1.5, "Known breakage")."""
    code = answer.get("code")
    if code == CODE_BAD_PASSWORD:
        return CloudError(
            f"Xiaomi did not accept the user name and password (code {CODE_BAD_PASSWORD}). Check them by signing in "
            "at https://account.xiaomi.com; after repeated failures or captchas Xiaomi refuses sign-ins from this "
            f"address for a while, so wait an hour before trying again, {TOKEN_HINT}")
    if code == CODE_SYSTEM_ERROR:
        return CloudError(
            f"Xiaomi answered the verification code with 'system error' (code {CODE_SYSTEM_ERROR}), which it does "
            "when the code expired, was used already or was asked for too often: wait a few minutes, run "
            f"`interceptor xiaomi login` again and type the newest code at once; if it keeps failing, {BROWSER_HINT} "
            f"first, {TOKEN_HINT}")
    description = _description(answer)
    return CloudError(f"Xiaomi refused the sign-in at {step} (code {code}{': ' + description if description else ''}); "
                      f"try again later, or {BROWSER_HINT} to see what Xiaomi asks for")


def _keys(answer: dict[str, Any]) -> str:
    return ", ".join(sorted(answer))[:300]


def _query_value(url: str, name: str) -> str | None:
    values = parse_qs(urlsplit(url).query).get(name)
    return values[0] if values else None


class Account:
    """The account server's sign-in steps over one `Http`."""

    def __init__(self, http: Http, account_url: str, captcha_dir: Path, prompts: Prompts) -> None:
        self.http = http
        self.base = account_url
        self.captcha_dir = captcha_dir
        self.prompts = prompts
        self.device_id = device_id()

    # -- the password ---------------------------------------------------------------------------

    async def sign_in(self, user: str, password: str, sid: str) -> Credentials:
        """User name and password, with whatever captcha and two-factor step Xiaomi asks for."""
        first = parse_auth((await self.http.get(f"{self.base}/pass/serviceLogin",
                                                params={"_json": "true", "sid": sid})).body, "serviceLogin")
        granted = await self._password(first, user, password)
        return await self._credentials(granted)

    async def oauth_code(self, user: str, password: str, query: dict[str, str]) -> str:
        """An OAuth2 authorisation code for another app (Zepp Life), through the same password step:
        the redirects after it end at the app's `redirect_uri` with `code=`, which is read, not visited."""
        authorize = parse_auth((await self.http.get(f"{self.base}/oauth2/authorize", params=query)).body,
                               "oauth2/authorize")
        login_url = (authorize.get("data") or {}).get("oauthLoginUrl") if isinstance(authorize.get("data"), dict) \
            else None
        if not login_url:
            log.warning("xiaomi: oauth2/authorize answered without data.oauthLoginUrl (keys %s)", _keys(authorize))
            raise CloudError("the Xiaomi account server did not start the Zepp Life sign-in (no oauthLoginUrl); "
                             "try again later")
        first = parse_auth((await self.http.get(login_url)).body, "oauth serviceLogin")
        granted = await self._password(first, user, password)
        hops = await self.http.follow(str(granted["location"]), stop=lambda url: _query_value(url, "code") is not None)
        target = hops[-1].location or ""
        code = _query_value(target, "code")
        if not code:
            raise CloudError("the Xiaomi sign-in for Zepp Life finished without an authorisation code; "
                             "try again, or use a Zepp account (`--zepp-account`)")
        return code

    async def _password(self, first: dict[str, Any], user: str, password: str) -> dict[str, Any]:
        """Step 2 until it grants a `location`: captchas (at most MAX_CAPTCHAS) and two-factor."""
        missing = [name for name in ("_sign", "qs", "sid", "callback") if name not in first]
        if missing:
            log.warning("xiaomi: serviceLogin answered without %s (keys %s)", ", ".join(missing), _keys(first))
            raise CloudError("the Xiaomi account server did not start a sign-in (its first answer lacks "
                             f"{', '.join(missing)}); try again later")
        form = {"_json": "true", "sid": first["sid"], "callback": first["callback"], "_sign": first["_sign"],
                "qs": first["qs"], "user": user, "hash": password_hash(password)}
        cookies = {"sdkVersion": SDK_VERSION, "deviceId": self.device_id}
        for attempt in range(MAX_CAPTCHAS + 1):
            answer = parse_auth((await self.http.post(f"{self.base}/pass/serviceLoginAuth2", data=form,
                                                      cookies=cookies)).body, "serviceLoginAuth2")
            if captcha_url := answer.get("captchaUrl"):
                if attempt == MAX_CAPTCHAS:
                    raise CloudError(
                        f"Xiaomi asked for a captcha {MAX_CAPTCHAS + 1} times in a row (a captcha loop). Wait an hour "
                        f"(Xiaomi blocks sign-ins that loop), then {BROWSER_HINT} and try again, {TOKEN_HINT}")
                if attempt:
                    log.info("xiaomi: Xiaomi asks for another captcha")
                typed, ick = await self._captcha(str(captcha_url))
                form["captCode"] = typed
                cookies["ick"] = ick
                continue
            if notification_url := answer.get("notificationUrl"):
                return await self._two_factor(str(notification_url))
            if answer.get("code") == 0 and answer.get("location"):
                return answer
            log.debug("xiaomi: serviceLoginAuth2 refused the sign-in: code %s (keys %s)", answer.get("code"),
                     _keys(answer))
            raise refusal(answer, "the password step")
        raise AssertionError("unreachable")

    # -- captcha --------------------------------------------------------------------------------

    async def _captcha(self, captcha_url: str, cookies: dict[str, str] | None = None) -> tuple[str, str]:
        """Fetch the image, save it where the user can open it, and ask what it says; the `ick` cookie
        ties the answer to the image."""
        answer = await self.http.get(f"{self.base}{captcha_url}" if captcha_url.startswith("/") else captcha_url,
                                     cookies=cookies)
        ick = answer.cookies.get("ick")
        if answer.status != 200 or not answer.body or ick is None:
            raise CloudError("Xiaomi asked for a captcha but its image could not be fetched "
                             f"(HTTP {answer.status}); try again later")
        kind = answer.headers.get("Content-Type", "")
        suffix = ".png" if "png" in kind else ".gif" if "gif" in kind else ".jpg"
        path = self.captcha_dir / f"xiaomi-captcha{suffix}"
        private_dir(self.captcha_dir)
        path.write_bytes(answer.body)
        path.chmod(FILE_MODE)
        try:
            return self.prompts.captcha(path).strip(), ick
        finally:
            path.unlink(missing_ok=True)

    # -- two-factor -----------------------------------------------------------------------------

    async def _two_factor(self, notification_url: str) -> dict[str, Any]:
        if "/fe/service/identity/authStart" not in notification_url:
            log.warning("xiaomi: a notificationUrl this tool does not know (%s)", where(notification_url))
            raise CloudError(f"Xiaomi asks for a verification this tool does not know; {BROWSER_HINT} and complete "
                             f"it there, then try again, {TOKEN_HINT}")
        listing = await self.http.get(notification_url.replace("/fe/service/identity/authStart", "/identity/list"))
        options = parse_auth(listing.body, "identity/list")
        session = listing.cookies.get("identity_session")
        flag = options.get("flag")
        if flag not in (FLAG_PHONE, FLAG_EMAIL) or session is None:
            log.warning("xiaomi: identity/list offered flag %r (keys %s)", flag, _keys(options))
            raise CloudError("Xiaomi asks for a two-factor method this tool does not know (neither a text message "
                             f"nor an e-mail); {BROWSER_HINT} and complete it there, {TOKEN_HINT}")
        kind = "Phone" if flag == FLAG_PHONE else "Email"
        cookies = {"identity_session": session}
        verify = parse_auth((await self.http.get(f"{self.base}/identity/auth/verify{kind}", cookies=cookies,
                                                 params={"_flag": flag, "_json": "true"})).body, f"verify{kind}")
        if verify.get("code") != 0:
            raise refusal(verify, "the two-factor step")
        masked = str(verify.get(f"masked{kind}") or ("your phone" if flag == FLAG_PHONE else "your e-mail"))
        ticket_form: dict[str, Any] = {"retry": 0, "icode": "", "_json": "true"}
        for attempt in range(MAX_CAPTCHAS + 1):
            sent = parse_auth((await self.http.post(f"{self.base}/identity/auth/send{kind}Ticket", data=ticket_form,
                                                    cookies=cookies)).body, f"send{kind}Ticket")
            if captcha_url := sent.get("captchaUrl"):
                if attempt == MAX_CAPTCHAS:
                    raise CloudError(f"Xiaomi asked for a captcha {MAX_CAPTCHAS + 1} times before sending the code; "
                                     f"wait an hour, then try again, {TOKEN_HINT}")
                typed, ick = await self._captcha(str(captcha_url), cookies)
                ticket_form["icode"] = typed
                cookies = {"identity_session": session, "ick": ick}
                continue
            if sent.get("code") != 0:
                raise refusal(sent, f"sending the code to {masked}")
            break
        ticket = self.prompts.code(masked).strip()
        checked = parse_auth((await self.http.post(
            f"{self.base}/identity/auth/verify{kind}", cookies={"identity_session": session},
            params={"_flag": flag, "ticket": ticket, "trust": "false", "_json": "true"})).body, f"verify{kind}")
        if checked.get("code") != 0 or not checked.get("location"):
            raise refusal(checked, "the verification code")
        return checked

    # -- the service token ----------------------------------------------------------------------

    async def _credentials(self, granted: dict[str, Any]) -> Credentials:
        """Follow `location` to the service: the last hop sets `serviceToken`; after a two-factor step
        the hops before it carry `passToken`, `userId` and `extension-pragma` (`ssecurity`)."""
        found: dict[str, Any] = {name: granted[name] for name in ("ssecurity", "userId", "passToken")
                                 if granted.get(name)}
        hops = await self.http.follow(str(granted["location"]))
        for hop in hops:
            found.update({name: hop.cookies[name] for name in ("passToken", "userId") if hop.cookies.get(name)})
            if pragma := hop.headers.get("extension-pragma"):
                found.update(_pragma(pragma))
        last: Answer = hops[-1]
        service_token = last.cookies.get("serviceToken")
        if last.text().strip() != "ok" or not service_token:
            log.warning("xiaomi: the service answered HTTP %d and cookies %s", last.status,
                        ", ".join(sorted(last.cookies)) or "none")
            raise CloudError("Xiaomi signed you in but the service did not hand out its token; try again later")
        missing = [name for name in ("ssecurity", "userId", "passToken") if not found.get(name)]
        if missing:
            raise CloudError(f"Xiaomi signed you in without {', '.join(missing)}; try again later, {TOKEN_HINT}")
        return Credentials(str(found["userId"]), str(found["passToken"]), str(found["ssecurity"]), service_token,
                           last.cookies.get("cUserId"))

    async def renew(self, user_id: str, pass_token: str, sid: str) -> Credentials:
        """A fresh service token (and ssecurity) from the pass token, without asking anything."""
        answer = parse_auth((await self.http.get(
            f"{self.base}/pass/serviceLogin", params={"_json": "true", "sid": sid},
            cookies={"userId": user_id, "passToken": pass_token})).body, "serviceLogin")
        if answer.get("code") != 0 or not answer.get("location") or not answer.get("ssecurity"):
            log.debug("xiaomi: the pass token was refused: code %s (keys %s)", answer.get("code"), _keys(answer))
            raise SignInExpired("your saved Xiaomi sign-in is no longer accepted (Xiaomi ends it after a password "
                                "change, a sign-out of all devices or a long time): run `interceptor xiaomi login` "
                                "again")
        answer.setdefault("userId", user_id)
        answer.setdefault("passToken", pass_token)
        return await self._credentials(answer)


def _pragma(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        log.warning("xiaomi: an extension-pragma header that is not JSON (%d characters)", len(text))
        return {}
    return {name: value[name] for name in ("ssecurity", "userId", "passToken") if isinstance(value, dict)
            and value.get(name)}
