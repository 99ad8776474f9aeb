"""The `[garmin]` section: whose new weigh-ins `serve` uploads to Garmin Connect.

```toml
[garmin]
users = ["anna"]        # these people's new weigh-ins go to their Garmin Connect account
domain = "garmin.com"   # "garmin.cn" for an account on Garmin's China servers
```

Each person signs in once with `interceptor garmin login --user anna` (their own Garmin account).
`interceptor export garmin --user PERSON` needs no entry here: it uploads on demand.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GarminSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    users: tuple[str, ...] = Field(default=(), description="people (slugs) whose new weigh-ins serve uploads")
    domain: Literal["garmin.com", "garmin.cn"] = Field(
        default="garmin.com", description="'garmin.cn' for accounts on Garmin's China servers")
