"""Per-client limits shared by every listener (DNS over UDP and TCP, the HTTP listeners).

Anyone on the household network can send as fast as the link allows, from as many addresses as it
likes (one IPv6 host can use a whole /64), and hold as many connections open as it likes. So:

* `RateLimiter` is a token bucket per client address;
* `ConnectionTable` caps the connections one address and everyone together may hold, and at a cap
  makes room by dropping an idle connection of whoever holds the most, its oldest first;
* every table keyed by client address holds at most `MEMORY_LIMIT` addresses, because the
  addresses come from the network and must not be able to grow the process.

Sans-I/O: callers pass the clock; the only effect is `Held.drop()` on a connection made to make room.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

MEMORY_LIMIT = 4096


class RateLimiter:
    """A token bucket per client address: `rate` requests per second, bursts up to `burst`.

    A household's router may forward everyone's traffic from one address, hence generous defaults
    wherever this is used; a rate of 0 turns the limiter off."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self._buckets: dict[str, list[float]] = {}

    def allow(self, client_ip: str, now: float, cost: float = 1.0) -> bool:
        """Take `cost` tokens from the client's bucket; False (and nothing taken) when it has fewer."""
        if self.rate <= 0:
            return True
        bucket = self._buckets.get(client_ip)
        if bucket is None:
            if len(self._buckets) >= MEMORY_LIMIT:
                self._forget_full(now)
            allowed = cost <= self.burst
            self._buckets[client_ip] = [self.burst - cost if allowed else self.burst, now]
            return allowed
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens < cost:
            bucket[0] = tokens
            return False
        bucket[0] = tokens - cost
        return True

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (their clients would be allowed anyway)."""
        refill = self.burst / self.rate
        self._buckets = {ip: b for ip, b in self._buckets.items() if now - b[1] < refill}
        if len(self._buckets) >= MEMORY_LIMIT:
            self._buckets.clear()


class Held(Protocol):
    """A client connection as `ConnectionTable` sees it."""

    @property
    def client_ip(self) -> str: ...

    @property
    def busy(self) -> bool:
        """True while the client is owed an answer: such a connection is never dropped to make room."""

    def drop(self) -> None:
        """Close at once; the connection's own code sees the close and finishes."""


class ConnectionTable:
    """Who holds which connections, and at each new one, whether it may stay and who makes room."""

    def __init__(self, per_client: int, total: int) -> None:
        self.per_client = per_client
        self.total = total
        self.count = 0
        self._by_client: dict[str, list[Held]] = {}  # each list in order of opening

    def admit(self, connection: Held) -> bool:
        """Register `connection`, dropping an idle one to make room at a cap; False: no room at all."""
        mine = self._by_client.get(connection.client_ip, [])
        if len(mine) >= self.per_client or self.count >= self.total:
            victim = _oldest_idle(mine) if len(mine) >= self.per_client else self._idle_of_the_greediest()
            if victim is None:
                return False
            self.release(victim)
            victim.drop()
        self._by_client.setdefault(connection.client_ip, []).append(connection)
        self.count += 1
        return True

    def release(self, connection: Held) -> None:
        """Forget `connection` (closed by its client, by a limit, or dropped to make room); idempotent."""
        mine = self._by_client.get(connection.client_ip)
        if mine is None or connection not in mine:
            return
        mine.remove(connection)
        self.count -= 1
        if not mine:
            del self._by_client[connection.client_ip]

    def connections(self) -> list[Held]:
        return [connection for mine in self._by_client.values() for connection in mine]

    def _idle_of_the_greediest(self) -> Held | None:
        """The oldest idle connection of the client holding the most connections that has one idle."""
        best: Held | None = None
        best_count = 0
        for mine in self._by_client.values():
            if len(mine) > best_count:
                idle = _oldest_idle(mine)
                if idle is not None:
                    best, best_count = idle, len(mine)
        return best


def _oldest_idle(connections: list[Held]) -> Held | None:
    return next((connection for connection in connections if not connection.busy), None)


class ListenerLimits(BaseModel):
    """What one client, and everyone together, may do to an HTTP listener (`interceptor.listeners`).

    The defaults are far above what a household's devices do: a WS-50 makes 4 requests a
    conversation on one connection, a BLE gateway posts a batch a second on one kept-alive
    connection, a browser opens 6 connections."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    idle_timeout: float = Field(
        default=30.0, gt=0, le=3600,
        description="seconds a connection may stay open with no request under way (after opening or a reply);"
        " longer than the 15 s after which HTTP clients such as aiohttp's drop an idle connection themselves",
    )
    request_timeout: float = Field(
        default=20.0, gt=0, le=3600,
        description="seconds from a request's first byte to its reply: a request sent slowly, or half, is cut off",
    )
    max_connections: int = Field(default=128, ge=1, le=100_000, description="connections open at once, in all")
    max_connections_per_client: int = Field(
        default=16, ge=1, le=100_000, description="connections one client address may hold open at once",
    )
    rate_limit: float = Field(
        default=20.0, ge=0, description="requests a second one client address may make (0: no limit); beyond, 429",
    )
    rate_burst: int = Field(default=100, ge=1, description="requests a client may make at once above its rate")


def limit_keys(section: str, **renamed: str) -> dict[str, str]:
    """How the config file writes each `ListenerLimits` field of a listener, for its log lines:
    `[section] field`, or `[section] <renamed[field]>` where that listener's settings name it otherwise."""
    unknown = set(renamed) - set(ListenerLimits.model_fields)
    if unknown:
        raise ValueError(f"not ListenerLimits fields: {sorted(unknown)}")
    return {field: f"[{section}] {renamed.get(field, field)}" for field in ListenerLimits.model_fields}
