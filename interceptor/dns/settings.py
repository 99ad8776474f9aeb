"""The `[dns]` section of the config: where the responder listens and which names it intercepts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DnsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(default=True, description="start the DNS responder with `interceptor serve`")
