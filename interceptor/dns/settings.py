"""The `[dns]` section of the config: where the responder listens and which names it intercepts.

Defaults are chosen so that a household can point its router at the box and nothing else: listen on
port 53 for IPv4 and IPv6, intercept only the Withings cloud name, answer only local clients, and
forward everything else to two public resolvers. Every validator says what is wrong and what to write
instead, because the CLI prints that message as the whole error.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from interceptor.hostport import parse_host_port

DEFAULT_INTERCEPT_NAME = "scalews.withings.net"

# Loopback, RFC 1918, link-local, ULA: the "local subnets" that Unbound, Pi-hole (listeningMode=LOCAL)
# and Debian's dnsmasq (--local-service) answer by default (reference §2.1).
LOCAL_NETWORKS = (
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "169.254.0.0/16",
    "::1/128",
    "fc00::/7",
    "fe80::/10",
)

_LABEL = re.compile(r"^(?!-)[a-z0-9_-]{1,63}(?<!-)$")



def normalise_name(value: str) -> str:
    """Lower-case, no trailing dot; raises ValueError naming the fix for anything that is not a DNS name."""
    name = value.strip().lower().rstrip(".")
    if name.startswith("*."):
        raise ValueError(
            f"'{value}': wildcards are written as name = '{name[2:]}' with subdomains = true"
        )
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"'{value}' is not a DNS name; write e.g. '{DEFAULT_INTERCEPT_NAME}'")
    return name


def host_port_with_default(value: str, default_port: int = 53) -> tuple[str, int]:
    """`HOST:PORT`, `[V6]:PORT`, or a bare IP address meaning port 53."""
    text = value.strip()
    try:
        return str(ipaddress.ip_address(text.strip("[]"))), default_port
    except ValueError:
        pass
    host, port = parse_host_port(text)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"'{value}': the host must be an IP address; write e.g. '9.9.9.9:53' or '[::1]:53'") from None
    return host, port


def _networks(values: tuple[str, ...], key: str) -> tuple[str, ...]:
    for value in values:
        try:
            ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise ValueError(
                f"'{value}' in {key} is not an address or subnet; write e.g. '192.168.1.0/24' or '192.168.1.23'"
            ) from None
    return values


class InterceptRule(BaseModel):
    """One name the responder answers itself, optionally only for some clients (split horizon)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default=DEFAULT_INTERCEPT_NAME, description="the name to answer, e.g. 'scalews.withings.net'")
    subdomains: bool = Field(default=False, description="also answer every name below it (a whole suffix)")
    address: str = Field(
        default="auto",
        description="IPv4 or IPv6 address to answer with, or 'auto': the address of the interface the query came in on",
    )
    clients: tuple[str, ...] = Field(
        default=(),
        description="only these client addresses or subnets get the local answer; empty means everyone",
    )
    ttl: int = Field(default=300, ge=0, le=86400, description="TTL of the local answer, seconds")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return normalise_name(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value == "auto":
            return value
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(
                f"'{value}' is not an IP address; write e.g. '192.168.1.10', "
                "or 'auto' for the address the query came in on"
            ) from None

    @field_validator("clients")
    @classmethod
    def _clients(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value, "clients")


class DnsSettings(BaseModel):
    """Everything `[dns]` may say; the defaults make a safe household resolver (see deploy/dns.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="start the DNS responder with `interceptor serve`")
    listen: tuple[str, ...] = Field(
        default=("0.0.0.0:53", "[::]:53"),
        description="HOST:PORT for each listener; each one serves UDP and TCP",
    )
    upstreams: tuple[str, ...] = Field(
        default=("9.9.9.9:53", "1.1.1.1:53"),
        description="resolvers that answer every name not intercepted, in order of preference",
    )
    intercept: tuple[InterceptRule, ...] = Field(
        default=(InterceptRule(),),
        description="names answered locally; the first rule (exact name before suffix) matching the client wins",
    )
    allow_clients: tuple[str, ...] = Field(
        default=LOCAL_NETWORKS,
        description="client subnets that are answered at all; everyone else gets REFUSED (not an open resolver)",
    )
    cache_size: int = Field(
        default=10_000, ge=0, le=1_000_000, description="cached answers kept; 0 turns the cache off"
    )
    cache_min_ttl: int = Field(default=0, ge=0, le=3600, description="floor on how long an answer is cached, seconds")
    cache_max_ttl: int = Field(default=86_400, ge=1, le=604_800, description="ceiling on how long an answer is cached")
    negative_max_ttl: int = Field(
        default=900, ge=0, le=86_400,
        description="ceiling for NXDOMAIN and empty answers (RFC 2308); 0 never caches them",
    )
    max_in_flight: int = Field(
        default=150, ge=1, le=100_000,
        description="client queries waiting on upstreams; beyond it: REFUSED at once (dnsmasq's dns-forward-max)",
    )
    rate_limit: float = Field(
        default=200.0, ge=0, description="queries per second allowed per client address; 0 turns it off"
    )
    rate_burst: int = Field(default=400, ge=1, description="queries a client may send at once above its rate")
    refused_rate: float = Field(
        default=5.0, gt=0, le=10_000,
        description="REFUSED answers per second to one client address (strangers, clients over rate_limit); "
        "beyond it they get silence, so a forged source address cannot aim the responder at a victim",
    )
    refused_rate_total: float = Field(
        default=50.0, gt=0, le=100_000, description="REFUSED answers per second to all client addresses together"
    )
    query_log: bool = Field(default=False, description="log every query (client, name, type, outcome)")
    upstream_timeout: float = Field(
        default=0.8, gt=0, le=10, description="seconds to wait for one upstream before trying the next"
    )
    query_timeout: float = Field(
        default=1.9, gt=0, le=30, description="seconds after which a client gets SERVFAIL when no upstream answered"
    )
    tcp_idle_timeout: float = Field(
        default=5.0, gt=0, le=300,
        description="seconds a TCP connection may go without delivering a whole query (silent, or stuck "
        "halfway through one) before it is closed; RFC 7766 §6.2.3 recommends the order of seconds",
    )
    tcp_max_lifetime: float = Field(
        default=60.0, gt=0, le=3600,
        description="seconds a TCP connection may stay open however busy; then it is closed once its answers are sent",
    )
    max_tcp_connections: int = Field(default=100, ge=1, le=10_000, description="TCP client connections served at once")
    max_tcp_per_client: int = Field(
        default=10, ge=1, le=10_000,
        description="TCP connections one client address may hold; beyond it (or beyond max_tcp_connections) "
        "a new connection replaces an idle one of the client holding the most, or is closed at once",
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one HOST:PORT; write e.g. listen = ['0.0.0.0:53', '[::]:53']")
        for item in value:
            parse_host_port(item)
        return value

    @field_validator("upstreams")
    @classmethod
    def _upstreams(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one resolver; write e.g. upstreams = ['192.168.1.1:53', '9.9.9.9:53']")
        for item in value:
            host_port_with_default(item)
        return value

    @field_validator("allow_clients")
    @classmethod
    def _allow(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _networks(value, "allow_clients")

    @model_validator(mode="after")
    def _ordered(self) -> DnsSettings:
        if self.cache_min_ttl > self.cache_max_ttl:
            raise ValueError(
                f"cache_min_ttl ({self.cache_min_ttl}) is above cache_max_ttl ({self.cache_max_ttl}); lower the floor"
            )
        if self.upstream_timeout > self.query_timeout:
            raise ValueError(
                f"upstream_timeout ({self.upstream_timeout}) is longer than query_timeout ({self.query_timeout}); "
                "write e.g. upstream_timeout = 0.8 and query_timeout = 1.9"
            )
        return self

    @property
    def listen_addresses(self) -> list[tuple[str, int]]:
        return [parse_host_port(item) for item in self.listen]

    @property
    def upstream_addresses(self) -> list[tuple[str, int]]:
        return [host_port_with_default(item) for item in self.upstreams]

