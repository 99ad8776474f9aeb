"""A stand-in for the Xiaomi account server, Xiaomi Home, Mi Fitness and the Zepp Life cloud.

The real clouds cannot run here (and no test may talk to a vendor host), so this aiohttp application
answers on loopback as shared/reference/cloud-and-formats.md §1.2–1.5 and §2 describe them, and
checks what a client must get right, recording every violation in `Cloud.violations` (tests assert
the list is empty):

* account: the `&&&START&&&` prefix; step 2's form fields, the MD5 hash, the `_sign` step 1 issued,
  cookies `sdkVersion` and `deviceId`; the captcha's `ick` cookie and `captCode`; the two-factor
  steps' `identity_session` cookie and parameters; pass-token re-login's `userId` and `passToken`;
* API: cookies `userId` and the `serviceToken` issued for that service (`xiaomiio` for Xiaomi Home,
  `miothealth` for Mi Fitness); `signature` over the encrypted fields and `rc4_hash__` over the plain
  `data`, with the path signed as the reference says (after `/app` on the Xiaomi Home host, from
  `/app` on the Mi Fitness host); the nonce's minutes within FRESH_MINUTES of now and never reused;
  each call's `data` keys and, for scale history, the `MIOT-REQUEST-MODEL` header;
* Zepp: the token exchange's fields, the `apptoken` header, `limit=200`.

Where the reference is silent the stand-in makes a choice and the client must cope with it: an
expired service token or app token is HTTP 401; a region that does not hold the account's devices
answers an empty device list; history pages overlap by one record (an inclusive bound), and Zepp
pages hold three records.

URL layout (one port): account server at `/`, Xiaomi Home at `/{region}/app`, Mi Fitness at
`/fitness-{region}`, Zepp data at `/mifit`, Zepp token exchanges at `/zepp` and `/huami`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from interceptor.importers.xiaomi import crypto

PREFIX = "&&&START&&&"
FRESH_MINUTES = 2
HOME_PAGE = 20
FITNESS_PAGE = 4
ZEPP_PAGE = 3
CAPTCHA_TEXT = "W7XK"
TWO_FACTOR_CODE = "246810"
MASKED_EMAIL = "m***@example.org"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c63000100000500010d0a2db40000000049454e44ae426082")
DEVICE_LIST_KEYS = ["getVirtualModel", "getHuamiDevices", "get_split_device", "support_smart_home"]
HOME_KEYS = ["endTime", "beginTime", "model", "uid", "did", "accountId"]
CHINA_KEYS = ["param", "model", "uid", "did"]
ZEPP_OAUTH = {"_json": "true", "client_id": "428135909242707968", "pt": "1",
              "redirect_uri": "https://api-mifit-cn.huami.com/huami.health.loginview.do", "response_type": "code"}


@dataclass
class Token:
    service_token: str
    ssecurity: bytes
    expired: bool = False


@dataclass
class Cloud:
    """The accounts, devices and histories the stand-in serves, and what it saw."""

    base: str = ""
    user: str = "me@example.org"
    password: str = "correct horse battery"
    user_id: str = "1234567890"
    region: str = "de"
    pass_token: str = field(default_factory=lambda: "V1:" + secrets.token_urlsafe(24))
    captchas: int = 0  # captchas to demand before the password step is accepted
    two_factor: bool = False
    devices: list[dict[str, Any]] = field(default_factory=list)
    bind_keys: dict[str, str] = field(default_factory=dict)
    home_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # model → records
    fitness_records: list[dict[str, Any]] = field(default_factory=list)
    zepp_email: str = "zepp@example.org"
    zepp_password: str = "zepp password"
    zepp_user_id: str = "7001"
    zepp_members: list[dict[str, Any]] = field(default_factory=list)
    zepp_records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # member id → records
    clock: Callable[[], float] = time.time
    # what the stand-in did and saw
    tokens: dict[str, dict[str, Token]] = field(default_factory=dict)  # sid → service token → token
    violations: list[str] = field(default_factory=list)
    renewals: list[str] = field(default_factory=list)  # sids renewed from the pass token
    calls: list[str] = field(default_factory=list)  # signed paths called, in order
    zepp_tokens: dict[str, bool] = field(default_factory=dict)  # app token → expired
    zepp_logins: int = 0
    _signs: set[str] = field(default_factory=set)
    _icks: dict[str, str] = field(default_factory=dict)
    _identity: dict[str, bool] = field(default_factory=dict)
    _nonces: set[bytes] = field(default_factory=set)
    _codes: set[str] = field(default_factory=set)
    _accesses: set[str] = field(default_factory=set)

    def violation(self, text: str) -> web.Response:
        self.violations.append(text)
        return web.Response(status=400, text=f"stand-in: {text}")

    def expire(self, sid: str) -> None:
        for token in self.tokens.get(sid, {}).values():
            token.expired = True

    def expire_zepp(self) -> None:
        for token in self.zepp_tokens:
            self.zepp_tokens[token] = True

    # -- account server ---------------------------------------------------------------------------

    def issue(self, sid: str) -> tuple[Token, str]:
        token = Token("ST-" + secrets.token_urlsafe(32), secrets.token_bytes(16))
        self.tokens.setdefault(sid, {})[token.service_token] = token
        client_sign = secrets.token_urlsafe(8)
        self._signs.add(client_sign)
        return token, f"{self.base}/sts/{sid}?clientSign={quote(client_sign)}&token={quote(token.service_token)}"

    def granted(self, sid: str) -> dict[str, Any]:
        token, location = self.issue(sid)
        if sid == "oauth2.0":
            code = "ZC-" + secrets.token_urlsafe(8)
            self._codes.add(code)
            location = f"{self.base}/oauth2/finish?code_for={quote(code)}"
        return {"code": 0, "result": "ok", "ssecurity": base64.b64encode(token.ssecurity).decode(),
                "userId": int(self.user_id), "passToken": self.pass_token, "location": location,
                "nonce": 123, "psecurity": "x"}


def auth(payload: dict[str, Any]) -> web.Response:
    return web.Response(text=PREFIX + json.dumps(payload), content_type="application/json")


def _routes(cloud: Cloud) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    @routes.get("/pass/serviceLogin")
    async def service_login(request: web.Request) -> web.Response:
        sid = request.query.get("sid")
        if request.query.get("_json") != "true" or not sid:
            return cloud.violation("serviceLogin without _json=true and sid")
        if "passToken" in request.cookies or "userId" in request.cookies:
            if request.cookies.get("userId") != cloud.user_id or request.cookies.get("passToken") != cloud.pass_token:
                return auth({"code": 70016, "description": "登录验证失败", "location": "", "_sign": "x", "qs": "",
                             "sid": sid, "callback": "https://sts.api.io.mi.com/sts"})
            cloud.renewals.append(sid)
            return auth(cloud.granted(sid))
        sign = secrets.token_urlsafe(12)
        cloud._signs.add(sign)
        return auth({"code": 70016, "_sign": sign, "qs": f"%3F_json%3Dtrue%26sid%3D{sid}", "sid": sid,
                     "callback": f"https://sts.api.io.mi.com/sts/{sid}", "location": "", "captchaUrl": None})

    @routes.post("/pass/serviceLoginAuth2")
    async def service_login_auth(request: web.Request) -> web.Response:
        form = dict(await request.post())
        expected = {"_json", "sid", "callback", "_sign", "qs", "user", "hash"}
        if set(form) - {"captCode"} != expected:
            return cloud.violation(f"serviceLoginAuth2 fields {sorted(form)}")
        if not request.cookies.get("sdkVersion") or len(request.cookies.get("deviceId", "")) < 8:
            return cloud.violation("serviceLoginAuth2 without the sdkVersion and deviceId cookies")
        if form["_sign"] not in cloud._signs:
            return cloud.violation("serviceLoginAuth2 with a _sign step 1 did not issue")
        if "captCode" in form:
            ick = request.cookies.get("ick")
            if ick is None or ick not in cloud._icks:
                return cloud.violation("captCode without the ick cookie of the captcha image")
            if form["captCode"] == cloud._icks.pop(ick) and cloud.captchas > 0:
                cloud.captchas -= 1
        if cloud.captchas > 0:
            return auth({"code": 87001, "description": "验证码输入错误", "captchaUrl":
                         f"/pass/getCode?icodeType=login&{secrets.randbelow(10**8) / 10**8}", "location": ""})
        if form["user"] != cloud.user or form["hash"] != hashlib.md5(cloud.password.encode()).hexdigest().upper():
            return auth({"code": 70016, "description": "登录验证失败", "location": "", "captchaUrl": None})
        if cloud.two_factor:
            return auth({"code": 0, "location": "", "notificationUrl":
                         f"{cloud.base}/fe/service/identity/authStart?sid={form['sid']}&context=ctx"})
        return auth(cloud.granted(str(form["sid"])))

    @routes.get("/pass/getCode")
    async def captcha(request: web.Request) -> web.Response:
        ick = secrets.token_urlsafe(10)
        cloud._icks[ick] = CAPTCHA_TEXT
        response = web.Response(body=PNG, content_type="image/png")
        response.set_cookie("ick", ick)
        return response

    @routes.get("/identity/list")
    async def identity_list(request: web.Request) -> web.Response:
        session = secrets.token_urlsafe(10)
        cloud._identity[session] = False
        response = auth({"code": 2, "flag": 8, "sid": request.query.get("sid")})
        response.set_cookie("identity_session", session)
        return response

    def identity(request: web.Request) -> str | None:
        session = request.cookies.get("identity_session")
        return session if session in cloud._identity else None

    @routes.get("/identity/auth/verifyEmail")
    async def verify_email_start(request: web.Request) -> web.Response:
        if identity(request) is None or request.query.get("_flag") != "8" or request.query.get("_json") != "true":
            return cloud.violation("verifyEmail without identity_session, _flag=8 or _json=true")
        return auth({"code": 0, "maskedEmail": MASKED_EMAIL})

    @routes.post("/identity/auth/sendEmailTicket")
    async def send_ticket(request: web.Request) -> web.Response:
        form = dict(await request.post())
        session = identity(request)
        if session is None or form != {"retry": "0", "icode": "", "_json": "true"}:
            return cloud.violation(f"sendEmailTicket with fields {sorted(form)} or no identity_session")
        cloud._identity[session] = True
        return auth({"code": 0})

    @routes.post("/identity/auth/verifyEmail")
    async def verify_email(request: web.Request) -> web.Response:
        session = identity(request)
        query = request.query
        if session is None or not cloud._identity[session] or query.get("_flag") != "8" \
                or query.get("trust") != "false" or query.get("_json") != "true":
            return cloud.violation("verifyEmail (POST) before a ticket was sent, or without its parameters")
        if query.get("ticket") != TWO_FACTOR_CODE:
            return auth({"code": 10001, "result": "error", "desc": "系统错误", "description": "系统错误"})
        return auth({"code": 0, "location": f"{cloud.base}/identity/result/check?sid=xiaomiio&done={session}"})

    @routes.get("/identity/result/check")
    async def identity_check(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{cloud.base}/pass/serviceLoginJump?sid={request.query.get('sid')}")

    @routes.get("/pass/serviceLoginJump")
    async def login_jump(request: web.Request) -> web.Response:
        sid = request.query.get("sid", "xiaomiio")
        token, location = cloud.issue(sid)
        response = web.HTTPFound(location)
        response.set_cookie("passToken", cloud.pass_token)
        response.set_cookie("userId", cloud.user_id)
        response.headers["extension-pragma"] = json.dumps({"ssecurity": base64.b64encode(token.ssecurity).decode(),
                                                            "nonce": 1})
        raise response

    @routes.get("/sts/{sid}")
    async def sts(request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        client_sign = request.query.get("clientSign", "")
        token = cloud.tokens.get(sid, {}).get(request.query.get("token", ""))
        if client_sign not in cloud._signs or token is None:
            return cloud.violation("sts with a clientSign or token the account server did not issue")
        response = web.Response(text="ok")
        response.set_cookie("serviceToken", token.service_token)
        response.set_cookie("userId", cloud.user_id)
        response.set_cookie("cUserId", "c" + cloud.user_id)
        return response

    # -- Zepp Life via Xiaomi OAuth2 ---------------------------------------------------------------

    @routes.get("/oauth2/authorize")
    async def authorize(request: web.Request) -> web.Response:
        if dict(request.query) != ZEPP_OAUTH:
            return cloud.violation(f"oauth2/authorize with {dict(request.query)}")
        return auth({"code": 0, "data": {"oauthLoginUrl": f"{cloud.base}/pass/serviceLogin?_json=true&sid=oauth2.0"}})

    @routes.get("/oauth2/finish")
    async def oauth_finish(request: web.Request) -> web.Response:
        code = request.query.get("code_for", "")
        raise web.HTTPFound(f"{cloud.base}/oauth2/redirect?code_for={quote(code)}")

    @routes.get("/oauth2/redirect")
    async def oauth_redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound(f"{ZEPP_OAUTH['redirect_uri']}?code={quote(request.query.get('code_for', ''))}")

    # -- Xiaomi Home and Mi Fitness ----------------------------------------------------------------

    def opened(request: web.Request, sid: str, path: str, form: dict[str, str]) -> tuple[bytes, dict[str, Any]] | \
            web.Response:
        if request.cookies.get("userId") != cloud.user_id:
            return web.Response(status=401, text="auth err")
        token = cloud.tokens.get(sid, {}).get(request.cookies.get("serviceToken", ""))
        if token is None or token.expired:
            return web.Response(status=401, text="auth err")
        try:
            plain = _open(path, form, token.ssecurity)
        except crypto.CryptoError as error:
            return cloud.violation(f"{path}: {error}")
        minutes = crypto.nonce_minutes(plain.nonce)
        if abs(minutes - cloud.clock() // 60) > FRESH_MINUTES:
            return cloud.violation(f"{path}: a stale nonce ({minutes} vs {cloud.clock() // 60:.0f} minutes)")
        if plain.nonce in cloud._nonces:
            return cloud.violation(f"{path}: a nonce used twice")
        cloud._nonces.add(plain.nonce)
        try:
            data = json.loads(plain.data)
        except json.JSONDecodeError:
            return cloud.violation(f"{path}: data is not JSON")
        cloud.calls.append(path)
        return plain.key, data

    def answer(key: bytes, result: Any) -> web.Response:
        return web.Response(text=_encrypt({"code": 0, "message": "ok", "result": result}, key))

    @routes.post("/{region:[a-z0-9]{2}}/app/{tail:.*}")
    async def home(request: web.Request) -> web.Response:
        region = request.match_info["region"]
        path = "/" + request.match_info["tail"]
        found = opened(request, "xiaomiio", path, {k: str(v) for k, v in (await request.post()).items()})
        if isinstance(found, web.Response):
            return found
        key, data = found
        here = region == cloud.region
        if path == "/v2/home/device_list_page":
            if list(data) != DEVICE_LIST_KEYS:
                return cloud.violation(f"device_list_page data keys {list(data)}")
            return answer(key, {"list": cloud.devices if here else [], "has_more": False})
        if path == "/v2/device/blt_get_beaconkey":
            if data != {"did": data.get("did"), "pdid": 1}:
                return cloud.violation(f"blt_get_beaconkey data {data}")
            return answer(key, {"beaconkey": cloud.bind_keys[data["did"]]} if here and data["did"] in cloud.bind_keys
                          else None)
        if path in ("/eco/common/scale/getUserDataByPage", "/eco/scale/getData"):
            china = path == "/eco/scale/getData"
            if china != (region == "cn") or list(data) != (CHINA_KEYS if china else HOME_KEYS):
                return cloud.violation(f"{path} in region {region} with keys {list(data)}")
            if request.headers.get("MIOT-REQUEST-MODEL") != data["model"]:
                return cloud.violation(f"{path} without MIOT-REQUEST-MODEL {data['model']}")
            bounds = data["param"] if china else data
            if bounds["endTime"] != 1 or data["uid"] != (int(cloud.user_id) if china else cloud.user_id):
                return cloud.violation(f"{path} with endTime {bounds['endTime']} or uid {data['uid']!r}")
            records = cloud.home_records.get(data["model"], []) if here else []
            page = [item for item in sorted(records, key=lambda item: -item["createTime"])
                    if item["createTime"] <= bounds["beginTime"]][:HOME_PAGE]
            return answer(key, page)
        return cloud.violation(f"unknown Xiaomi Home path {path}")

    @routes.post("/fitness-{region}/app/v1/data/get_fitness_data_by_time")
    async def fitness(request: web.Request) -> web.Response:
        path = "/app/v1/data/get_fitness_data_by_time"
        found = opened(request, "miothealth", path, {k: str(v) for k, v in (await request.post()).items()})
        if isinstance(found, web.Response):
            return found
        key, data = found
        if set(data) - {"next_key"} != {"start_time", "end_time", "key"} or data["key"] != "weight":
            return cloud.violation(f"get_fitness_data_by_time data {data}")
        here = request.match_info["region"] == cloud.region
        chosen = sorted((item for item in cloud.fitness_records
                         if data["start_time"] <= item["time"] <= data["end_time"]), key=lambda item: -item["time"])
        start = int(data.get("next_key", "0"))
        page = chosen[start:start + FITNESS_PAGE] if here else []
        more = here and start + FITNESS_PAGE < len(chosen)
        return answer(key, {"data_list": page, "has_more": more,
                                             "next_key": str(start + FITNESS_PAGE) if more else ""})

    # -- Zepp ---------------------------------------------------------------------------------------

    def zepp_session() -> web.Response:
        token = "AT-" + secrets.token_urlsafe(16)
        cloud.zepp_tokens[token] = False
        cloud.zepp_logins += 1
        return web.json_response({"token_info": {"login_token": "LT", "app_token": token,
                                                 "user_id": cloud.zepp_user_id, "ttl": 864000, "app_ttl": 86400},
                                  "regist_info": {"region": "eu-central-1", "country_code": "DE"}, "result": "ok"})

    @routes.post("/zepp/v2/client/login")
    async def zepp_xiaomi_login(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("grant_type") != "request_token" or form.get("third_name") != "xiaomi-hm-mifit" \
                or form.get("app_name") != "com.xiaomi.hm.health" or not form.get("device_id"):
            return cloud.violation(f"Zepp token exchange with {sorted(form)}")
        if form.get("code") not in cloud._codes:
            return web.json_response({"error_code": "0106"}, status=400)
        cloud._codes.discard(str(form["code"]))
        return zepp_session()

    @routes.post("/huami/registrations/{email}/tokens")
    async def zepp_password(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("client_id") != "HuaMi" or form.get("token") != "access" or form.get("state") != "REDIRECTION":
            return cloud.violation(f"registrations/tokens with {sorted(form)}")
        target = "https://s3-us-west-2.amazonws.com/hm-registration/successsignin.html"
        if request.match_info["email"] != cloud.zepp_email or form.get("password") != cloud.zepp_password:
            raise web.HTTPSeeOther(f"{target}?error=0106")
        access = "AC-" + secrets.token_urlsafe(8)
        cloud._accesses.add(access)
        raise web.HTTPSeeOther(f"{target}?access={access}&country_code=DE&region=eu-central-1")

    @routes.post("/huami/v2/client/login")
    async def zepp_email_login(request: web.Request) -> web.Response:
        form = dict(await request.post())
        if form.get("grant_type") != "access_token" or form.get("third_name") != "huami" \
                or form.get("country_code") != "DE":
            return cloud.violation(f"Zepp e-mail token exchange with {sorted(form)}")
        if form.get("code") not in cloud._accesses:
            return web.json_response({"error_code": "0106"}, status=400)
        return zepp_session()

    def zepp_authorised(request: web.Request) -> web.Response | None:
        token = request.headers.get("apptoken", "")
        if token not in cloud.zepp_tokens or cloud.zepp_tokens[token]:
            return web.json_response({"code": 0, "message": "invalid token"}, status=401)
        return None

    @routes.post("/mifit/huami.health.scale.familymember.get.json")
    async def zepp_family(request: web.Request) -> web.Response:
        if (refused := zepp_authorised(request)) is not None:
            return refused
        form = dict(await request.post())
        if form != {"fuid": "all", "userid": cloud.zepp_user_id}:
            return cloud.violation(f"familymember.get with {form}")
        return web.json_response({"code": 1, "message": "success",
                                  "data": {"total": len(cloud.zepp_members), "list": cloud.zepp_members}})

    @routes.get("/mifit/users/{user}/members/{member}/weightRecords")
    async def zepp_weights(request: web.Request) -> web.Response:
        if (refused := zepp_authorised(request)) is not None:
            return refused
        if request.match_info["user"] != cloud.zepp_user_id or request.query.get("limit") != "200":
            return cloud.violation(f"weightRecords for user {request.match_info['user']} limit "
                                   f"{request.query.get('limit')}")
        to_time = int(request.query["toTime"])
        records = sorted((item for item in cloud.zepp_records.get(request.match_info["member"], [])
                          if item["generatedTime"] <= to_time), key=lambda item: -item["generatedTime"])
        page = records[:ZEPP_PAGE]
        following = page[-1]["generatedTime"] if len(records) > ZEPP_PAGE else 0
        return web.json_response({"items": page, "next": following})

    return routes


@dataclass(frozen=True)
class _Opened:
    data: str
    nonce: bytes
    key: bytes


def _open(path: str, form: dict[str, str], ssecurity: bytes) -> _Opened:
    """The server side of the reference's scheme: check both signatures, decrypt `data`."""
    try:
        nonce = base64.b64decode(form["_nonce"], validate=True)
        encrypted = {"data": form["data"], "rc4_hash__": form["rc4_hash__"]}
        sent = form["signature"]
    except (KeyError, ValueError) as error:
        raise crypto.CryptoError(f"form fields {sorted(form)} ({type(error).__name__})") from None
    if list(form) != ["data", "rc4_hash__", "signature", "_nonce"]:
        raise crypto.CryptoError(f"form fields in the order {list(form)}")
    key = crypto.signed_nonce(ssecurity, nonce)
    if crypto.signature(path, encrypted, key) != sent:
        raise crypto.CryptoError(f"signature does not match the path {path}")
    plain = {name: crypto.rc4(key, base64.b64decode(value)).decode() for name, value in encrypted.items()}
    if crypto.signature(path, {"data": plain["data"]}, key) != plain["rc4_hash__"]:
        raise crypto.CryptoError("rc4_hash__ does not match the data")
    return _Opened(plain["data"], nonce, key)


def _encrypt(answer: dict[str, Any], key: bytes) -> str:
    return base64.b64encode(crypto.rc4(key, crypto.compact_json(answer).encode())).decode()


class StandIn:
    """The stand-in running on its own event loop in a thread, on a free loopback port."""

    def __init__(self, cloud: Cloud) -> None:
        self.cloud = cloud
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="xiaomi-stand-in", daemon=True)
        self._runner: web.AppRunner | None = None

    def start(self) -> str:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        self.cloud.base = f"http://127.0.0.1:{port}"
        return self.cloud.base

    async def _start(self) -> int:
        app = web.Application()
        app.add_routes(_routes(self.cloud))
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
