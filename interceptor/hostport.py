"""`HOST:PORT` as every listener's setting writes it, and the section every listener's settings
extend; below `config` and every settings module, so none of them has to import another for it."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, field_validator


def parse_host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT`, with IPv6 hosts in brackets (`[::]:53`)."""
    match = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^:\[\]]+):(\d{1,5})", value.strip())
    if not match:
        raise ValueError(f"'{value}' is not HOST:PORT; write e.g. '0.0.0.0:80' or '[::]:80'")
    host = match.group(1) or match.group(3)
    port = int(match.group(2) or match.group(4))
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return host, port


class ListenerSection(BaseModel):
    """A config section with a `listen = "HOST:PORT"` key (each section gives its own default)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str) -> str:
        parse_host_port(value)
        return value

    @property
    def host_port(self) -> tuple[str, int]:
        return parse_host_port(self.listen)
