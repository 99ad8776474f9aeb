"""The `[xiaomi]` section: where the Xiaomi and Zepp clouds are, and who is who in them.

```toml
[xiaomi]
region = "de"                        # cn, de, i2, ru, sg, us (default: the one chosen at login)
members = { "Alex" = "fed" }         # the app's member name → person slug
owner = "fed"                        # whose the account is (records naming nobody go to them)
# account_url = "https://account.xiaomi.com"           # the endpoints, for a proxy or tests;
# api_url = "https://{region}.api.io.mi.com/app"       # `{region}` is filled in
```

Defaults follow the reference (cloud-and-formats.md §1.2, §2): Xiaomi Home on `api.io.mi.com/app`
in China and `<region>.api.io.mi.com/app` elsewhere, Mi Fitness on `hlth.io.mi.com` or
`<region>.hlth.io.mi.com`, Zepp Life on `api-mifit.zepp.com`. Nothing here is a secret: the session
(tokens) lives in its own file next to the journal and is never part of the config.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Regions the reference lists for api.io.mi.com (SmartScaleConnect, XiaomiGateway3 `BASE`); the
# token extractor also knows tw and in.
REGIONS = ("cn", "de", "i2", "ru", "sg", "us", "tw", "in")
CHINA = "cn"
_SLUG = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
_URL = re.compile(r"https?://[^\s/]+(/\S*)?")


def _url(value: str | None) -> str | None:
    if value is not None and not _URL.fullmatch(value):
        raise ValueError(f"{value!r} is not an http(s) URL; write e.g. 'https://account.xiaomi.com'")
    return value.rstrip("/") if value else value


class XiaomiSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    region: str | None = Field(default=None, description="server region of the Xiaomi Home account")
    members: dict[str, str] = Field(default_factory=dict, description="member name in the vendor app → person slug")
    owner: str | None = Field(default=None, description="the person whose account it is")
    account_url: str = "https://account.xiaomi.com"
    api_url: str | None = Field(default=None, description="Xiaomi Home API; default from the region")
    fitness_url: str | None = Field(default=None, description="Mi Fitness API; default from the region")
    zepp_url: str = "https://api-mifit.zepp.com"
    zepp_login_url: str = Field(default="https://account.zepp.com/v2/client/login",
                                description="Zepp token exchange after a Xiaomi-account sign-in")
    zepp_email_login_url: str = Field(default="https://account.huami.com/v2/client/login",
                                      description="Zepp token exchange after a Zepp-account sign-in")
    zepp_registrations_url: str = Field(default="https://api-user.huami.com/registrations",
                                        description="Zepp-account password check")

    _urls = field_validator("account_url", "api_url", "fitness_url", "zepp_url", "zepp_login_url",
                            "zepp_email_login_url", "zepp_registrations_url")(_url)

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in REGIONS:
            raise ValueError(f"{value!r} is not a Xiaomi server region; use one of {', '.join(REGIONS)}")
        return value.lower() if value else value

    @field_validator("members")
    @classmethod
    def _members(cls, members: dict[str, str]) -> dict[str, str]:
        for name, slug in members.items():
            if not _SLUG.fullmatch(slug):
                raise ValueError(f"member {name!r}: {slug!r} is not a person slug (e.g. 'anna')")
        return members

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not _SLUG.fullmatch(value):
            raise ValueError(f"{value!r} is not a person slug (e.g. 'anna')")
        return value

    def api_base(self, region: str) -> str:
        """Xiaomi Home: requests are signed with the path after this base (which ends in `/app`)."""
        if self.api_url is not None:
            return self.api_url.replace("{region}", region)
        return "https://api.io.mi.com/app" if region == CHINA else f"https://{region}.api.io.mi.com/app"

    def fitness_base(self, region: str) -> str:
        """Mi Fitness: requests are signed with the full path, `/app` included (reference pitfall)."""
        if self.fitness_url is not None:
            return self.fitness_url.replace("{region}", region)
        return "https://hlth.io.mi.com" if region == CHINA else f"https://{region}.hlth.io.mi.com"

    def can_probe_regions(self) -> bool:
        """Whether other regions' hosts can be derived (not when a fixed `api_url` is configured)."""
        return self.api_url is None or "{region}" in self.api_url
