"""The Xiaomi sign-in kept between commands: `<data_dir>/xiaomi-session.json`, mode 0600.

One account (`user_id`, the long-lived `pass_token`, the `region` of its Xiaomi Home devices) and,
per cloud service (`sid`: `xiaomiio` for Xiaomi Home, `miothealth` for Mi Fitness), the short-lived
pair a request is signed and authorised with: `ssecurity` (base64) and `service_token`. A service
token that expired is renewed from the pass token (reference §1.5 "Token re-login"), so the user
signs in once. Secrets are excluded from `repr`, so a stray log line cannot show them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import stat
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from interceptor.importers.cloud.errors import CloudError
from interceptor.importers.cloud.secretfile import read_secret, remove_secret, write_secret

log = logging.getLogger(__name__)

FILE_NAME = "xiaomi-session.json"
XIAOMI_HOME = "xiaomiio"
MI_FITNESS = "miothealth"
FORMAT = 1
_RELOGIN = "run `interceptor xiaomi login` again"


class SessionError(CloudError):
    """The stored session is missing or unusable; the message says what to run."""


@dataclass(frozen=True)
class ServiceSession:
    ssecurity: str = field(repr=False)  # base64, as the account server sends it
    service_token: str = field(repr=False)
    c_user_id: str | None = field(default=None, repr=False)

    @property
    def ssecurity_bytes(self) -> bytes:
        try:
            return base64.b64decode(self.ssecurity, validate=True)
        except (binascii.Error, ValueError):
            raise SessionError(f"the stored ssecurity is not base64: {_RELOGIN}") from None


@dataclass(frozen=True)
class XiaomiSession:
    user_id: str
    pass_token: str = field(repr=False)
    region: str
    services: dict[str, ServiceSession] = field(default_factory=dict)

    @property
    def token(self) -> str:
        """`USERID:PASSTOKEN`, the form `login --pass-token` takes (reference §1.5)."""
        return f"{self.user_id}:{self.pass_token}"

    def with_service(self, sid: str, service: ServiceSession, pass_token: str | None = None) -> XiaomiSession:
        return replace(self, services={**self.services, sid: service}, pass_token=pass_token or self.pass_token)

    def without_service(self, sid: str) -> XiaomiSession:
        return replace(self, services={name: value for name, value in self.services.items() if name != sid})

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "user_id": self.user_id, "pass_token": self.pass_token, "region": self.region,
            "services": {sid: {"ssecurity": value.ssecurity, "service_token": value.service_token,
                               "c_user_id": value.c_user_id} for sid, value in self.services.items()},
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> XiaomiSession:
        try:
            services = {
                str(sid): ServiceSession(str(item["ssecurity"]), str(item["service_token"]),
                                         None if item.get("c_user_id") is None else str(item["c_user_id"]))
                for sid, item in dict(value.get("services") or {}).items()
            }
            return cls(str(value["user_id"]), str(value["pass_token"]), str(value["region"]), services)
        except (KeyError, TypeError, ValueError):
            raise SessionError(f"the stored Xiaomi session is incomplete: {_RELOGIN}") from None


# Session files already warned about in this process: a command loads its session more than once.
_warned: set[Path] = set()


def warn_if_others_can_read(path: Path) -> None:
    """Say once, naming the fix, when group or others may read the session: its pass token signs in
    to the Xiaomi account for months. We write it 0600, but a copy or a restore from a backup may
    not keep that; the file is still used (it is the user's to decide), just not silently."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return  # no file: nothing to warn about (reading it says the rest)
    if mode & 0o077 and path not in _warned:
        _warned.add(path)
        log.warning("%s is mode %04o: other accounts on this machine may read your Xiaomi sign-in;"
                    " run `chmod 600 %s`", path, mode, path)


class SessionStore:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def load(self) -> XiaomiSession | None:
        warn_if_others_can_read(self.path)
        value = read_secret(self.path, _RELOGIN)
        return None if value is None else XiaomiSession.from_json(value)

    def require(self) -> XiaomiSession:
        session = self.load()
        if session is None:
            raise SessionError("not signed in to Xiaomi: run `interceptor xiaomi login` first")
        return session

    def save(self, session: XiaomiSession) -> None:
        write_secret(self.path, session.to_json())

    def remove(self) -> bool:
        return remove_secret(self.path)
