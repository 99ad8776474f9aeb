"""The `[mqtt]` section: the broker Home Assistant listens to, and where we publish on it.

```toml
[mqtt]
url = "mqtt://interceptor:secret@homeassistant.local:1883"   # or mqtts://...:8883
client_id = "scale-interceptor-ha"
discovery_prefix = "homeassistant"     # Home Assistant's default
base_topic = "interceptor"             # our state, availability and command topics
```

The credentials in the URL are moved out of it while the config is read: `url` keeps the broker's
address only, and the password lives in a `SecretStr`, so `config check`, logs and error messages
show stars. An error about the URL never repeats it with its password.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from interceptor.masking import mask_url

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
# A topic prefix: levels of printable characters without MQTT wildcards, no empty level.
_TOPIC_PREFIX = re.compile(r"[^+#/\x00-\x1f]+(/[^+#/\x00-\x1f]+)*")
EXAMPLE_URL = "mqtt://user:password@homeassistant.local:1883"


def _split_url(url: str) -> tuple[str, str | None, str | None]:
    """The URL without credentials, and the (percent-decoded) user and password it carried."""
    shown = mask_url(url)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"url '{shown}' is not a broker URL; write e.g. '{EXAMPLE_URL}'") from None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"url '{shown}' must be mqtt://HOST[:PORT] or mqtts://HOST[:PORT], e.g. '{EXAMPLE_URL}'")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"url '{shown}' has a path or query; a broker URL is only mqtt[s]://[USER:PASSWORD@]HOST[:PORT]")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    bare = f"{parts.scheme}://{host}:{port or DEFAULT_PORTS[parts.scheme]}"
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return bare, user, password


class MqttSettings(BaseModel):
    """Where Home Assistant's broker is. No `url` means no MQTT: nothing is published."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = Field(default=None, description=f"e.g. '{EXAMPLE_URL}' (mqtts:// for TLS)")
    username: str | None = Field(default=None, description="instead of the user in the URL")
    password: SecretStr | None = Field(default=None, description="instead of the password in the URL")
    client_id: str = Field(default="scale-interceptor-ha", min_length=1, max_length=64,
                           description="unique on the broker ([ble.mqtt] uses another)")
    discovery_prefix: str = Field(default="homeassistant", description="Home Assistant's MQTT discovery prefix")
    base_topic: str = Field(default="interceptor", description="prefix of our state, availability and command topics")
    ca_file: Path | None = Field(default=None, description="mqtts:// with a private CA: its certificate (PEM)")
    keepalive_s: int = Field(default=60, ge=15, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _credentials_out_of_the_url(cls, data: Any) -> Any:
        """Runs before the fields are checked, so that no error about `url` can quote its password."""
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        bare, user, password = _split_url(data["url"])
        if (user is not None and data.get("username") is not None) or (
                password is not None and data.get("password") is not None):
            raise ValueError("the broker credentials are given twice: in url and in username/password; keep one")
        data = {**data, "url": bare}
        if user is not None:
            data["username"] = user
        if password is not None:
            data["password"] = password
        return data

    @field_validator("discovery_prefix", "base_topic")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        if len(value) > 200 or not _TOPIC_PREFIX.fullmatch(value):
            raise ValueError("must be topic levels separated by '/', without '+', '#' or an empty level, "
                             "e.g. 'homeassistant'")
        return value

    @field_validator("ca_file")
    @classmethod
    def _readable(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"'{value}' is not a file; give the PEM certificate of the CA that signed the broker's")
        return value

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, value: str) -> str:
        if not value.isprintable() or value.strip() != value:
            raise ValueError("must be printable, without spaces around it, e.g. 'scale-interceptor-ha'")
        return value

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def tls(self) -> bool:
        return self.url is not None and self.url.startswith("mqtts://")

    @property
    def host(self) -> str:
        assert self.url is not None
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        assert self.url is not None
        return urlsplit(self.url).port or DEFAULT_PORTS["mqtt"]
