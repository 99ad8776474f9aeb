"""The `[tls_probe]` section: an optional listener on port 443 that reads who tried TLS, for which name.

Off by default: port 443 is often another program's, and the emulated cloud does not need it. Turn it
on (or start `interceptor serve --tls-probe-listen HOST:PORT`) when a scale asks our DNS for its host
name and never talks HTTP: `interceptor doctor` then says whether it tried TLS instead.
"""

from __future__ import annotations

from pydantic import Field

from interceptor.hostport import ListenerSection


class TlsProbeSettings(ListenerSection):
    enabled: bool = Field(default=False, description="listen with `interceptor serve`")
    listen: str = Field(default="0.0.0.0:443", description="HOST:PORT; the scale connects to port 443")
    max_connections: int = Field(default=64, ge=1, le=10_000, description="connections read at once")
    max_connections_per_client: int = Field(default=4, ge=1, le=1000, description="connections per address")
    read_timeout_s: float = Field(default=5.0, gt=0, le=60, description="seconds a client has to send its hello")
