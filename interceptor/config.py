"""One TOML file plus `INTERCEPTOR_*` environment overrides, validated with pydantic.

A user who gets the config wrong must be told which key, why, and what to write instead; the CLI
turns `ConfigError` into that one line and exit status 2. Nested keys are overridden from the
environment with `__` between levels: `INTERCEPTOR_HOUSEHOLD__TIMEZONE=Europe/Paris`,
`INTERCEPTOR_HTTP__LISTEN=0.0.0.0:8080`. Values that look like JSON lists or tables are parsed as JSON.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from interceptor.ble.settings import BleSettings
from interceptor.dns.settings import DnsSettings
from interceptor.environment import CONFIG_VARIABLE, NOT_CONFIG_KEYS, PREFIX
from interceptor.garmin.settings import GarminSettings
from interceptor.homeassistant.settings import MqttSettings
from interceptor.hostport import ListenerSection
from interceptor.importers.xiaomi.settings import XiaomiSettings
from interceptor.limits import ListenerLimits
from interceptor.masking import is_secret_name, mask_url
from interceptor.nesting import TooDeep, loads_json, loads_toml
from interceptor.paths import default_data_dir
from interceptor.tls.settings import TlsProbeSettings
from interceptor.web.settings import WebSettings

ENV_PREFIX = PREFIX
DEFAULT_CONFIG_PATHS = (Path("interceptor.toml"), Path("/etc/interceptor/interceptor.toml"))
STANDARD_GRAVITY = 9.80665


class ConfigError(Exception):
    """A configuration the user must fix; the message names the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Section):
    """One member of the household, as the scale and the composition formulas need them."""

    slug: str = Field(description="stable id used in data and on the command line, e.g. 'anna'")
    name: str = Field(min_length=1, max_length=64)
    short_name: str = Field(description="three letters shown on the scale display, e.g. 'ANN'")
    sex: Literal["male", "female"]
    birth_date: date
    height_cm: float = Field(ge=50, le=250)
    withings_user_id: int | None = Field(
        default=None, ge=1, le=2**31 - 1,
        description="the id the scale echoes as `userid`; derived from the slug when not set",
    )
    weight_range_kg: tuple[float, float] | None = Field(
        default=None, description="[low, high]: weigh-ins outside it are never attributed to this person by weight",
    )
    weight_unit: Literal["kg", "lb", "st"] | None = Field(
        default=None, description="how the web page shows this person's weight; default the household's unit",
    )
    goal_weight_kg: float | None = Field(default=None, ge=20, le=400, description="drawn as a line on the web page")

    @field_validator("weight_range_kg")
    @classmethod
    def _ordered_range(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not 0 < value[0] < value[1] <= 500:
            raise ValueError("write [low, high] in kg with 0 < low < high <= 500, e.g. [55, 75]")
        return value

    @field_validator("slug")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,31}", value):
            raise ValueError("use 1-32 lower-case letters, digits, '-' or '_', starting with a letter or digit, "
                             "e.g. 'anna'")
        return value

    @field_validator("short_name")
    @classmethod
    def _three_letters(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise ValueError("must be exactly three letters A-Z (the scale shows it), e.g. 'ANN'")
        return value.upper()

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth(cls, value: date) -> date:
        if not date(1900, 1, 1) <= value <= date.today():
            raise ValueError("must be a date between 1900-01-01 and today, written YYYY-MM-DD")
        return value


class Household(_Section):
    timezone: str = Field(default="UTC", description="IANA name, e.g. 'Europe/Paris'")
    assign_tolerance_kg: float = Field(
        default=2.5, gt=0, le=20,
        description="a weigh-in without a device user id goes to the person whose recent weight is within this",
    )
    locale: str = Field(default="en_GB", pattern=r"^[a-z]{2}_[A-Z]{2}$")
    weight_unit: Literal["kg", "lb", "st"] = "kg"
    gravity_m_s2: float = Field(
        default=STANDARD_GRAVITY, ge=9.76, le=9.84,
        description="local gravitational acceleration; the scale corrects its load cells with it",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"'{value}' is not an IANA timezone name; write e.g. 'Europe/Paris'") from None
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class HttpSettings(ListenerLimits, ListenerSection):
    """The emulated Withings cloud's listener (the BLE gateway posts there too), and its limits
    (`interceptor.listeners`: timeouts, connection caps, a request rate per client address)."""

    listen: str = Field(default="0.0.0.0:80", description="HOST:PORT the emulated Withings cloud listens on")


class WithingsSettings(_Section):
    fm: int = Field(default=3, description="`fm` sent for each user; 3 in every capture but one (meaning unknown)")
    ind_extra: dict[str, int] = Field(
        default_factory=dict,
        description="extra raw keys for the session reply's `ind` object (e.g. {w = 1}); meanings are unverified",
    )


class InfluxSettings(_Section):
    """Where the InfluxDB sink writes. Empty `url` means no InfluxDB: the journal alone keeps everything."""

    url: str | None = Field(default=None, description="e.g. 'http://127.0.0.1:8086'")
    dialect: Literal["v1", "v2"] = Field(
        default="v1", description="v1: /write + InfluxQL (InfluxDB 1.x, the Home Assistant add-on); "
        "v2: influxdb-client (InfluxDB 2.x, 3.x, 1.8+)",
    )
    database: str = Field(default="scales", min_length=1, description="v1: the database")
    retention_policy: str | None = Field(default=None, description="v1: the retention policy (default: the database's)")
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = Field(default=None, description="v2: API token (1.8: 'user:password')")
    org: str | None = Field(default=None, description="v2: organisation ('-' on 1.8)")
    bucket: str | None = Field(default=None, description="v2: bucket ('database/retention' on 1.8)")
    batch_size: int = Field(default=500, ge=1, le=10_000)
    timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", value):
            raise ValueError(f"'{mask_url(value)}' is not an http(s) URL; write e.g. 'http://127.0.0.1:8086'")
        return value.rstrip("/") if value else value

    @model_validator(mode="after")
    def _dialect_needs(self) -> InfluxSettings:
        if self.url and self.dialect == "v2":
            missing = [name for name in ("token", "org", "bucket") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"dialect 'v2' needs {', '.join(missing)}; for InfluxDB 1.8 use token = "
                                 "'user:password', org = '-', bucket = 'database/retention'")
        return self

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def shown_url(self) -> str:
        """The URL as messages show it: a password in it masked."""
        return mask_url(self.url) if self.url is not None else "(none)"

    def secret_values(self) -> list[str]:
        """Every configured secret in the forms a server could echo back: password, token, the
        Basic credentials made of them, and a password inside the URL."""
        values = [secret.get_secret_value() for secret in (self.password, self.token) if secret is not None]
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password.get_secret_value()}"
            values += [pair, base64.b64encode(pair.encode()).decode()]
        if self.token is not None:
            values.append(base64.b64encode(self.token.get_secret_value().encode()).decode())
        if self.url is not None and "@" in self.url.split("//", 1)[-1].split("/", 1)[0]:
            userinfo = self.url.split("//", 1)[-1].split("/", 1)[0].rpartition("@")[0]
            values += [userinfo, userinfo.partition(":")[2], base64.b64encode(unquote(userinfo).encode()).decode()]
        return [value for value in values if value]


class RequestLogSettings(_Section):
    """`requests.sqlite`: every request a device made, for debugging; a ring bounded in rows and bytes."""

    max_rows: int = Field(default=10_000, ge=100, le=10_000_000, description="requests kept (the newest)")
    max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024 * 1024, le=100 * 1024**3,
        description="bytes the file may take: the oldest requests go first, and the file shrinks back",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=0, le=1024 * 1024, description="bytes of each body kept")


class DeviceSettings(_Section):
    model: str | None = Field(default=None, description="what to call it, e.g. 'WS-50'")
    name: str | None = None


class Config(_Section):
    # The journal lives there unless `data_dir` or `--data-dir` says otherwise.
    data_dir: Path = Field(default_factory=lambda: default_data_dir())
    household: Household = Field(default_factory=Household)
    users: tuple[Person, ...] = ()
    http: HttpSettings = Field(default_factory=HttpSettings)
    requestlog: RequestLogSettings = Field(default_factory=RequestLogSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    withings: WithingsSettings = Field(default_factory=WithingsSettings)
    influx: InfluxSettings = Field(default_factory=InfluxSettings)
    ble: BleSettings = Field(default_factory=BleSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    xiaomi: XiaomiSettings = Field(default_factory=XiaomiSettings)
    mqtt: MqttSettings = Field(default_factory=MqttSettings)  # Home Assistant's broker
    garmin: GarminSettings = Field(default_factory=GarminSettings)
    tls_probe: TlsProbeSettings = Field(default_factory=TlsProbeSettings)
    devices: dict[str, DeviceSettings] = Field(default_factory=dict, description="keyed by MAC address")

    @field_validator("devices")
    @classmethod
    def _normalise_macs(cls, devices: dict[str, DeviceSettings]) -> dict[str, DeviceSettings]:
        normalised: dict[str, DeviceSettings] = {}
        for key, settings in devices.items():
            mac = normalise_mac(key)
            if mac is None:
                raise ValueError(f"'{key}' is not a MAC address; write e.g. '00:24:e4:06:59:dc'")
            normalised[mac] = settings
        return normalised

    @model_validator(mode="after")
    def _unique_people(self) -> Config:
        for attribute in ("slug", "short_name", "withings_user_id"):
            seen: set[object] = set()
            for person in self.users:
                value = getattr(person, attribute)
                if value is None:
                    continue
                if value in seen:
                    raise ValueError(f"two users share {attribute} {value!r}; each must be unique")
                seen.add(value)
        return self

    @model_validator(mode="after")
    def _garmin_people(self) -> Config:
        known = {person.slug for person in self.users}
        for slug in self.garmin.users:
            if slug not in known:
                raise ValueError(f"[garmin] users names {slug!r}, who is not in [[users]] "
                                 f"({', '.join(sorted(known)) or 'nobody is'}); use a person's slug")
        return self

    def person(self, slug: str) -> Person | None:
        return next((person for person in self.users if person.slug == slug), None)

    def weight_unit(self, person: Person) -> str:
        """The unit a person reads their weight in: their own, else the household's."""
        return person.weight_unit or self.household.weight_unit


_MAC_PATTERN = re.compile(r"^([0-9a-f]{2})" + r"[:-]?([0-9a-f]{2})" * 5 + "$")


def normalise_mac(value: str) -> str | None:
    """Lower-case colon form, the way Withings scales send `auth`; None when it is not a MAC."""
    match = _MAC_PATTERN.match(value.strip().lower())
    return ":".join(match.groups()) if match else None


@dataclass(frozen=True)
class Override:
    """A key set on the command line: `key` dotted (`http.listen`), `flag` as the user typed it
    (`--http-listen`), so that a bad value is blamed on the flag and not on the file."""

    key: str
    value: Any
    flag: str


@dataclass(frozen=True)
class ConfigSource:
    """Where the effective config came from, for the line every command can show about it."""

    path: Path | None  # the file read (absolute), None when there was none
    searched: tuple[Path, ...]  # where a file was looked for when none was named
    variables: tuple[str, ...]  # INTERCEPTOR_* variables that set keys
    flags: tuple[str, ...]  # command-line flags that set keys

    def describe(self) -> str:
        """`/etc/interceptor/interceptor.toml, with INTERCEPTOR_INFLUX__URL, --http-listen`."""
        if self.path is not None:
            text = str(self.path)
        else:
            looked = " or ".join(str(path) for path in self.searched)
            text = f"no file (none at {looked}; --config FILE or ${CONFIG_VARIABLE} names one)"
        extra = [*self.variables, *self.flags]
        return text + (f", with {', '.join(extra)}" if extra else "")


@dataclass(frozen=True)
class Loaded:
    config: Config
    source: ConfigSource


def household_text(config: Config) -> str:
    """Who the server will recognise, in a few words: `fed, fra (Europe/Paris)`."""
    if not config.users:
        return f"no people ({config.household.timezone})"
    return f"{', '.join(person.slug for person in config.users)} ({config.household.timezone})"


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def _env_value(text: str, variable: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return loads_json(stripped, variable)
        except TooDeep as error:
            raise ConfigError(f"{error}; write a flat JSON list or table") from None
        except ValueError:  # not JSON after all: pydantic says what the key expects
            return text
    return text


def _apply_env(tree: dict[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """Merge `INTERCEPTOR_A__B=value` into the tree; returns dotted key → where it came from, for messages.
    The variables of the commands themselves (the config path, the gateway's) are not keys."""
    origins: dict[str, str] = {}
    for variable, text in sorted(environ.items()):
        if not variable.startswith(ENV_PREFIX) or variable in NOT_CONFIG_KEYS:
            continue
        path = [part.lower() for part in variable[len(ENV_PREFIX):].split("__") if part]
        if not path:
            continue
        _set_path(tree, path, _env_value(text, variable))
        origins[".".join(path)] = f"{variable} (environment)"
    return origins


def _covers(outer: str, inner: str) -> bool:
    """`influx` covers `influx.dialect`, `users` covers `users[0].slug`, a key covers itself."""
    return inner == outer or inner.startswith((outer + ".", outer + "["))


def _describe(error: Mapping[str, Any], origins: Mapping[str, str], source: str) -> str:
    location = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]).lstrip(".")
    message = error["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    if error["type"] == "extra_forbidden":
        message = "unknown key (misspelt, or in the wrong [section]?)"
    # The value set where the error is (or inside what it is about: a section's cross-key check) is to blame.
    blamed = [origin for key, origin in origins.items() if _covers(key, location) or _covers(location, key)]
    where = ", ".join(dict.fromkeys(blamed)) if blamed else source
    got = error.get("input")
    secret = any(is_secret_name(str(part)) for part in error["loc"])
    if isinstance(got, str) and "://" in got:
        got = mask_url(got)
    shown = f" (got {got!r})" if got is not None and not isinstance(got, dict | list) and not secret else ""
    return f"{where}: {location or '(top level)'}: {message}{shown}"


def find_config_path(explicit: Path | None, environ: Mapping[str, str]) -> Path | None:
    """`--config`, else `$INTERCEPTOR_CONFIG`, else ./interceptor.toml, else /etc/interceptor/interceptor.toml."""
    if explicit is not None:
        return explicit
    if environ.get(CONFIG_VARIABLE):
        return Path(environ[CONFIG_VARIABLE])
    return next((path for path in DEFAULT_CONFIG_PATHS if path.is_file()), None)


def read_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | Iterable[Override] | None = None,
) -> Loaded:
    """The config and where it came from. The one loader: every command reads its config here.

    `overrides` are keys set on the command line (`Override("http.listen", "127.0.0.1:8080",
    "--http-listen")`; a plain mapping of dotted keys for library callers); they win over the
    environment, which wins over the file. No file at all means an empty household with defaults.
    """
    environ = os.environ if environ is None else environ
    config_path = find_config_path(path, environ)
    tree: dict[str, Any] = {}
    source = "defaults"
    if config_path is not None:
        source = str(config_path)
        try:
            tree = loads_toml(config_path.read_text(encoding="utf-8"), str(config_path))
        except FileNotFoundError:
            raise ConfigError(f"{config_path}: no such file; create it from interceptor.example.toml") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"{config_path}: cannot read it: {error}") from None
        except TooDeep as error:
            raise ConfigError(f"{error}; look for runaway brackets or dotted keys") from None
        except ValueError as error:  # tomllib.TOMLDecodeError, or an integer too long to read
            raise ConfigError(f"{config_path}: not valid TOML: {error}") from None
    origins = _apply_env(tree, environ)
    variables = tuple(origin.removesuffix(" (environment)") for origin in origins.values())
    if isinstance(overrides, Mapping):
        overrides = [Override(key, value, f"--{key.split('.')[-1].replace('_', '-')}")
                     for key, value in overrides.items()]
    flags = []
    for override in overrides or ():
        if override.value is not None:
            _set_path(tree, override.key.split("."), override.value)
            origins[override.key] = override.flag
            flags.append(override.flag)
    try:
        config = Config.model_validate(tree)
    except ValidationError as error:
        lines = [_describe(item, origins, source) for item in error.errors(include_url=False)]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
    searched = () if config_path is not None else tuple(path.absolute() for path in DEFAULT_CONFIG_PATHS)
    return Loaded(config, ConfigSource(config_path.absolute() if config_path else None, searched, variables,
                                       tuple(dict.fromkeys(flags))))


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | Iterable[Override] | None = None,
) -> Config:
    """`read_config` without the source: for code that only needs the values."""
    return read_config(path, environ, overrides).config


def effective_config(config: Config) -> dict[str, Any]:
    """What `interceptor config check` prints: every value in force, secrets masked (pydantic shows a
    SecretStr as stars; a password inside a URL is masked here)."""
    values = config.model_dump(mode="json")
    if config.influx.url is not None:
        values["influx"]["url"] = mask_url(config.influx.url)
    return values
