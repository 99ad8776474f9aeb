"""Who may open the household page, and proof that a change was asked for by the page itself.

In order, for every request: the client address must be in `[web] allow_clients` (else 403, logged
at most once a minute per address); when a password is set, it must carry a logged-in session cookie
(else the login form, or 401 for the API); and a request that changes anything must carry the CSRF
token the page gave it (else 403, nothing changed). A page must be made within `[web]
request_timeout_s` (else 503). Connections, timeouts and the request rate are the listener's
(`interceptor.listeners`, started by `web.server`).

The session cookie is random, `HttpOnly` and `SameSite=Strict`; the CSRF token is an HMAC of it
under a key that lives only in this process (a restart signs everyone out, and costs nothing else).
The password is kept only as a salted scrypt digest, and compared in constant time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from aiohttp import web

from interceptor.dns.clients import NetworkSet
from interceptor.limits import RateLimiter
from interceptor.listeners import handling_began
from interceptor.web.settings import WebSettings

log = logging.getLogger(__name__)

COOKIE = "interceptor_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Reachable without a login: the form itself, and what it needs to look right.
PUBLIC_PATHS = ("/login", "/static/", "/favicon.svg")
MAX_SESSIONS = 256
MAX_REPORTED = 1024
REPORT_EVERY_S = 60.0
LOGIN_ATTEMPTS_PER_MINUTE = 5
_SCRYPT = {"n": 2**14, "r": 8, "p": 1, "dklen": 32}

SECURITY_HEADERS = {
    # Nothing inline, nothing from elsewhere: the page is HTML, one stylesheet, and forms to itself.
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self';"
                               " frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SESSION = web.RequestKey("session", str)


def _digest(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)


def wants_json(request: web.Request) -> bool:
    return request.path.startswith("/api/")


def refusal(request: web.Request, status: int, message: str) -> web.Response:
    """A one-sentence refusal, as JSON for the API and as plain text for a browser."""
    if wants_json(request):
        return web.json_response({"error": message}, status=status)
    return web.Response(text=message + "\n", status=status, content_type="text/plain")


class Access:
    def __init__(self, settings: WebSettings) -> None:
        self.allowed = NetworkSet(settings.allow_clients)
        self.login_limiter = RateLimiter(LOGIN_ATTEMPTS_PER_MINUTE / 60, LOGIN_ATTEMPTS_PER_MINUTE)
        self.request_timeout_s = settings.request_timeout_s
        self.session_seconds = settings.session_days * 86400
        self._key = secrets.token_bytes(32)
        self._salt = secrets.token_bytes(16)
        self._password = (None if settings.password is None
                          else _digest(settings.password.get_secret_value(), self._salt))
        self._sessions: OrderedDict[str, float] = OrderedDict()  # logged-in session → expiry (Unix time)
        self._reported: dict[str, float] = {}

    @property
    def password_required(self) -> bool:
        return self._password is not None

    # -- sessions and tokens ----------------------------------------------------------------------

    def csrf_token(self, session: str) -> str:
        return hmac.new(self._key, session.encode("ascii"), hashlib.sha256).hexdigest()[:32]

    def logged_in(self, session: str) -> bool:
        expiry = self._sessions.get(session)
        if expiry is None:
            return False
        if expiry < time.time():
            del self._sessions[session]
            return False
        return True

    async def check_password(self, attempt: str) -> bool:
        if self._password is None:
            return True
        digest = await asyncio.to_thread(_digest, attempt, self._salt)  # ~50 ms of CPU: off the event loop
        return hmac.compare_digest(digest, self._password)

    def log_in(self) -> str:
        """A new session (never the one the login form was served with: no session fixation)."""
        session = secrets.token_urlsafe(32)
        self._sessions[session] = time.time() + self.session_seconds
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return session

    def log_out(self, session: str) -> None:
        self._sessions.pop(session, None)

    def set_cookie(self, response: web.StreamResponse, session: str, *, lasting: bool) -> None:
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict", path="/",
                            max_age=self.session_seconds if lasting else None)

    # -- the middleware ---------------------------------------------------------------------------

    def _report(self, address: str) -> None:
        now = time.monotonic()
        if now - self._reported.get(address, -REPORT_EVERY_S) < REPORT_EVERY_S:
            return
        if len(self._reported) >= MAX_REPORTED:
            self._reported.clear()
        self._reported[address] = now
        log.warning("web: refused %s: not in [web] allow_clients (add its subnet there to let it in)", address)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        handling_began(request)  # from here, this middleware's timeout bounds the reply (`web.server`)
        address = request.remote or ""
        if address not in self.allowed:
            self._report(address)
            return refusal(request, 403, "this page answers only the household's own network")
        session = request.cookies.get(COOKIE, "")
        fresh = not (16 <= len(session) <= 64 and session.isascii())
        if fresh:
            session = secrets.token_urlsafe(32)
        request[SESSION] = session
        public = request.path.startswith(PUBLIC_PATHS)
        if self.password_required and not public and not self.logged_in(session):
            if wants_json(request) or request.method not in SAFE_METHODS:
                response = refusal(request, 401, "log in first (POST /login with password and csrf)")
            else:
                response = web.Response(status=303, headers={"Location": "/login"})
        elif request.method not in SAFE_METHODS and not await self._csrf_ok(request, session):
            response = refusal(request, 403, "missing or wrong CSRF token: reload the page and try again"
                                             " (API clients: GET /api/v1/session first)")
        else:
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    response = await handler(request)
            except web.HTTPException as error:
                if error.status < 400:
                    raise
                response = refusal(request, error.status, error.text or error.reason)
            except TimeoutError:
                log.error("web: %s %s took over %g s", request.method, request.path, self.request_timeout_s)
                response = refusal(request, 503, "this page took too long; try again")
        if fresh:
            self.set_cookie(response, session, lasting=False)
        return response

    async def _csrf_ok(self, request: web.Request, session: str) -> bool:
        origin = request.headers.get("Origin")
        if origin is not None and origin != "null" and origin.split("://", 1)[-1] != request.host:
            return False
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type == "application/x-www-form-urlencoded":
            form = await request.post()
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"),
                                                         self.csrf_token(session).encode("ascii"))


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(SECURITY_HEADERS)
    if "Cache-Control" not in response.headers:
        response.headers["Cache-Control"] = "no-store"  # who weighs what stays off shared caches and disks
