"""The `[web] section: where the household page listens, who may open it, and its limits.

The page shows who weighs what, so its defaults are those of the DNS responder: answer only the
local networks, and nothing else. A password is optional (a household network is often trusted);
when set, the server keeps only a salted scrypt digest of it, never the text.

The limits are those of every HTTP listener (`interceptor.listeners`), under the names this section
has always had: `listener_limits` maps them, `LISTENER_KEYS` names them in the log.
"""

from __future__ import annotations

import ipaddress

from pydantic import Field, SecretStr, field_validator

from interceptor.dns.settings import LOCAL_NETWORKS
from interceptor.hostport import ListenerSection
from interceptor.limits import ListenerLimits, limit_keys

LISTENER_KEYS = limit_keys("web", idle_timeout="keepalive_timeout_s", request_timeout="request_timeout_s",
                           rate_limit="requests_per_second", rate_burst="request_burst")


class WebSettings(ListenerSection):
    enabled: bool = Field(default=True, description="serve the household page with `interceptor serve`")
    listen: str = Field(default="0.0.0.0:8080", description="HOST:PORT of the household page")
    allow_clients: tuple[str, ...] = Field(
        default=LOCAL_NETWORKS,
        description="client addresses or subnets that may open the page; everyone else gets 403",
    )
    password: SecretStr | None = Field(default=None, description="ask for it before showing anything")
    session_days: int = Field(default=30, ge=1, le=365, description="how long a login lasts on a device")
    max_connections: int = Field(
        default=128, ge=1, le=10_000,
        description="connections open at once, in all; at the cap a newcomer takes the place of an idle one",
    )
    max_connections_per_client: int = Field(default=16, ge=1, le=1000, description="connections per address")
    requests_per_second: float = Field(
        default=20.0, ge=0, description="per client address (0 turns it off); beyond, 429 and the connection closed"
    )
    request_burst: int = Field(default=60, ge=1, description="requests a client may send at once above its rate")
    request_timeout_s: float = Field(
        default=15.0, gt=0, le=300,
        description="seconds a client has from a request's first byte until the page starts making it, and a page"
        " to be made (else 503)",
    )
    keepalive_timeout_s: float = Field(
        default=15.0, gt=0, le=300, description="seconds a connection may stay open with no request (just opened,"
        " or answered)",
    )

    @field_validator("allow_clients")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"'{item}' in allow_clients is not an address or subnet; write e.g. '192.168.1.0/24'"
                ) from None
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters (or leave it out to open the page without one)")
        return value

    @property
    def listener_limits(self) -> ListenerLimits:
        return ListenerLimits(idle_timeout=self.keepalive_timeout_s, request_timeout=self.request_timeout_s,
                              max_connections=self.max_connections,
                              max_connections_per_client=self.max_connections_per_client,
                              rate_limit=self.requests_per_second, rate_burst=self.request_burst)
