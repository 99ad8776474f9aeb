"""Signed, encrypted requests to Xiaomi Home and Mi Fitness, with the session renewed when it expired.

A stored service token is used as it is; when the API answers 401/403 (or an answer that does not
decrypt with the stored key) the token is renewed once from the pass token (`Account.renew`), saved,
and the request repeated. The reference does not say how an expired token is answered, so both are
taken as "expired" and anything else as an error with its code and message.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Literal

from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.http import Http, where
from interceptor.importers.xiaomi import crypto
from interceptor.importers.xiaomi.account import Account, Credentials
from interceptor.importers.xiaomi.session import (
    MI_FITNESS,
    XIAOMI_HOME,
    ServiceSession,
    SessionStore,
    XiaomiSession,
)
from interceptor.importers.xiaomi.settings import XiaomiSettings

log = logging.getLogger(__name__)

Service = Literal["home", "fitness"]
SIDS: dict[Service, str] = {"home": XIAOMI_HOME, "fitness": MI_FITNESS}
NAMES: dict[Service, str] = {"home": "Xiaomi Home", "fitness": "Mi Fitness"}
EXPIRED_STATUSES = (401, 403)
MESSAGE_CHARS = 160


class _Expired(Exception):
    pass


@dataclass
class XiaomiApi:
    http: Http
    settings: XiaomiSettings
    account: Account
    store: SessionStore
    session: XiaomiSession

    @property
    def region(self) -> str:
        return self.settings.region or self.session.region

    async def call(self, service: Service, path: str, data: dict[str, Any], *, region: str | None = None,
                   headers: dict[str, str] | None = None) -> Any:
        """The `result` of one request; `path` is what is signed (reference: after `/app` for Xiaomi
        Home, from `/app` on for Mi Fitness), appended to the service's base URL."""
        sid = SIDS[service]
        region = region or self.region
        base = self.settings.api_base(region) if service == "home" else self.settings.fitness_base(region)
        renewed = False
        if sid not in self.session.services:
            await self._renew(sid)
            renewed = True
        while True:
            try:
                return await self._once(service, base, path, data, headers)
            except _Expired:
                if renewed:
                    raise CloudError(f"{NAMES[service]} refused a service token that was just issued; "
                                     "run `interceptor xiaomi login` again") from None
                log.info("xiaomi: the %s service token expired; renewing it from the pass token", NAMES[service])
                await self._renew(sid)
                renewed = True

    async def _once(self, service: Service, base: str, path: str, data: dict[str, Any],
                    headers: dict[str, str] | None) -> Any:
        service_session = self.session.services[SIDS[service]]
        nonce = crypto.nonce(os.urandom(crypto.NONCE_RANDOM_BYTES), time.time() + self.http.clock_offset_s)
        signed = crypto.sign_request(path, crypto.compact_json(data), service_session.ssecurity_bytes, nonce)
        cookies = {"userId": self.session.user_id, "serviceToken": service_session.service_token}
        if service_session.c_user_id:
            cookies["cUserId"] = service_session.c_user_id
        url = base + path
        answer = await self.http.post(url, data=signed.form, cookies=cookies, headers=headers)
        if answer.status in EXPIRED_STATUSES:
            raise _Expired
        if answer.status != 200:
            raise CloudError(f"{NAMES[service]} answered HTTP {answer.status} at {where(url)}; try again later")
        try:
            reply = crypto.decrypt_response(answer.body, signed.key)
        except crypto.CryptoError:
            raise _Expired from None
        code = reply.get("code")
        if code != 0:
            message = str(reply.get("message") or reply.get("desc") or "")[:MESSAGE_CHARS]
            log.warning("xiaomi: %s refused %s: code %r, message %r", NAMES[service], path, code, message)
            raise CloudError(f"{NAMES[service]} refused {path} (code {code}{': ' + message if message else ''}); "
                             "try again later, and if it persists run `interceptor xiaomi login` again")
        return reply.get("result")

    async def _renew(self, sid: str) -> None:
        credentials = await self.account.renew(self.session.user_id, self.session.pass_token, sid)
        self.session = with_credentials(self.session, sid, credentials)
        self.store.save(self.session)


def with_credentials(session: XiaomiSession, sid: str, credentials: Credentials) -> XiaomiSession:
    return session.with_service(sid, ServiceSession(credentials.ssecurity, credentials.service_token,
                                                    credentials.c_user_id), credentials.pass_token)
