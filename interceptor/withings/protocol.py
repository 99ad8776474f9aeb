"""The Withings Wi-Fi scale protocol, sans-I/O: request bodies in, typed requests out; replies built as bytes.

Facts come from `shared/reference/withings-protocol.md` (section numbers cited below). Nothing here
touches a socket or a clock: callers pass `now`, so every function is testable with captured bytes.
Where the reference marks a field unknown we accept it, keep it raw, and never reject the request for it.
Whether a value is physically plausible (a weight of 0.001 kg, a meastime in 1970) is not decided here
but by `interceptor.plausibility`, for every source alike; the parser only guarantees that each number
is finite and each integer fits the field it came in.
"""

from __future__ import annotations

import functools
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote
from zoneinfo import ZoneInfo

from interceptor.nesting import TooDeep, loads_json

MAX_BODY_BYTES = 64 * 1024
MAX_FORM_FIELDS = 64
MAX_GROUPS = 256
MAX_MEASURES_PER_GROUP = 64
# The WBS01 firmware prints `userid=%d`, `meastime=%u` (reference §1.4): C ints, taken to be 32-bit.
INT32_RANGE = (-(2**31), 2**32 - 1)
MEASTIME_RANGE = (0, 2**32 - 1)
# Measure types are small integers (the highest any source lists is 227, cloud-and-formats.md); the
# bound keeps a raw key such as `withings_type_<n>` short.
MEASURE_TYPE_RANGE = (0, 32767)
# `value × 10^unit` (reference §2): the scales send -3..0; a wider exponent is not a measurement.
EXPONENT_RANGE = (-12, 12)
_DECIMAL = re.compile(r"[+-]?[0-9]{1,19}")

# Measure types the scale sends to /cgi-bin/measure (reference §2) mapped to our vocabulary.
READING_TYPES: dict[int, str] = {1: "weight_kg", 11: "heart_rate_bpm", 16: "withings_type16"}
# Types a scale may send with values the Withings cloud computed (reference §2, FHEM list).
VENDOR_METRIC_TYPES: dict[int, str] = {
    5: "fat_free_mass_kg",
    6: "body_fat_pct",
    8: "fat_mass_kg",
    76: "muscle_mass_kg",
    88: "bone_mass_kg",
}
# Type 77 is water *mass* in kg; our vocabulary has water_pct, derived when the group has a weight.
WATER_MASS_TYPE = 77
# /cgi-bin/v2/measure environment types and the unit codes that come with them (reference §1.5).
ENVIRONMENT_TYPES: dict[int, tuple[str, int]] = {12: ("temperature_c", 11), 35: ("co2_ppm", 12)}

# Status codes for replies that are not 0. The reference documents only 0 (§6 question 7), so these
# are ours; they are chosen to be distinct in logs and stable for tests.
STATUS_OK = 0
STATUS_INVALID_PARAMS = 503
STATUS_UNKNOWN_ACTION = 2554
STATUS_SERVER_ERROR = 2555


class ProtocolError(ValueError):
    """A request the server refuses; `status` is what the scale is told, `detail` what the log says."""

    def __init__(self, detail: str, status: int = STATUS_INVALID_PARAMS, http_status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        # 400 for a request that is not what the protocol looks like; 200 for a well-formed request
        # whose values we refuse (a weight of -3 kg), as an API answers a semantic error.
        self.http_status = http_status


# ---------------------------------------------------------------------------------------------------
# Parsing


def parse_form(body: bytes) -> dict[str, str]:
    """application/x-www-form-urlencoded → dict; the first occurrence of a repeated key wins."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ProtocolError(f"body is not UTF-8 at byte {error.start}") from None
    fields = text.split("&")
    if len(fields) > MAX_FORM_FIELDS:
        raise ProtocolError(f"malformed form: more than {MAX_FORM_FIELDS} fields")
    # What `urllib.parse.parse_qsl(keep_blank_values=True)` does, without decoding the many fields
    # that hold no escape: on every scale request, this is the costliest parsing step otherwise.
    form: dict[str, str] = {}
    for field_text in fields:
        if not field_text:
            continue
        key, _, value = field_text.partition("=")
        if "%" in key or "+" in key:
            key = _unquote_plus(key)
        if "%" in value or "+" in value:
            value = _unquote_plus(value)
        form.setdefault(key, value)
    return form


def _unquote_plus(text: str) -> str:
    """`urllib.parse.unquote_plus`, with the escapes of an ASCII text decoded by C codecs in one go.

    The standard library decodes escape after escape in Python, which made a WBS01's `measures`
    field (its JSON, escaped whole) the costliest step of a request. For an ASCII text it turns every
    `%XX` into byte XX and decodes the bytes as UTF-8, replacing what is not; so do the codecs here:
    `%` becomes `\\x` (a backslash of the text itself being doubled first), `unicode_escape` makes
    each escape the character of that byte, `latin-1` gives back the bytes, and UTF-8 decodes them.
    A `%` that starts no escape fails the codec, and such a text is left to the standard library."""
    text = text.replace("+", " ")
    if "%" not in text:
        return text
    if not text.isascii():
        return unquote(text)
    try:
        unescaped = text.replace("\\", "\\\\").replace("%", "\\x").encode("ascii").decode("unicode_escape")
    except UnicodeDecodeError:
        return unquote(text)
    return unescaped.encode("latin-1").decode("utf-8", "replace")


def _require(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if value is None or value == "":
        raise ProtocolError(f"missing field {name!r}")
    return value


def _in_range(number: int, bounds: tuple[int, int], what: str) -> int:
    low, high = bounds
    if not low <= number <= high:
        shown = str(number) if len(str(number)) <= 20 else f"an integer of {len(str(number))} digits"
        raise ProtocolError(f"{what} {shown} is outside {low}..{high}")
    return number


def _form_int(text: str, bounds: tuple[int, int], what: str) -> int:
    if not _DECIMAL.fullmatch(text):  # int() alone would take "1_0", "١٢" and 4300 digits
        raise ProtocolError(f"{what} is not an integer: {text[:40]!r}")
    return _in_range(int(text), bounds, what)


def _optional_int(form: dict[str, str], name: str, bounds: tuple[int, int] = INT32_RANGE) -> int | None:
    value = form.get(name)
    if value is None or value == "":
        return None
    return _form_int(value, bounds, name)


def _json_field(form: dict[str, str], name: str) -> Any:
    text = _require(form, name)
    try:
        return loads_json(text, f"field {name!r}")
    except TooDeep as error:
        raise ProtocolError(str(error)) from None
    except ValueError as error:
        raise ProtocolError(f"field {name!r} is not JSON: {error}") from None


def _mac(value: str, name: str) -> str:
    mac = _normalised_mac(value)
    if mac is None:
        raise ProtocolError(f"field {name!r} is not a MAC address: {value[:40]!r}")
    return mac


@functools.lru_cache(maxsize=256)
def _normalised_mac(value: str) -> str | None:
    """A household's few scales send the same MAC in every request: each spelling is checked once."""
    from interceptor.config import normalise_mac  # config owns the one MAC spelling

    return normalise_mac(value)


@dataclass(frozen=True)
class SessionNew:
    """`POST /cgi-bin/session action=new` (reference §1.3). `hash` is kept out: it is a secret."""

    mac: str
    manufacturing_id: str | None
    firmware: int | None
    battery_pct: int | None
    extra: dict[str, str]


SESSION_NEW_FIELDS = frozenset({"action", "auth", "hash", "mfgid", "currentfw", "batterylvl"})


def parse_session_new(form: dict[str, str]) -> SessionNew:
    battery = _optional_int(form, "batterylvl", (0, 100))
    return SessionNew(
        mac=_mac(_require(form, "auth"), "auth"),
        manufacturing_id=form.get("mfgid") or None,
        firmware=_optional_int(form, "currentfw"),
        battery_pct=battery,
        extra={key: value for key, value in form.items() if key not in SESSION_NEW_FIELDS},
    )


@dataclass(frozen=True)
class Measure:
    """One `{"value", "type", "unit"}` entry; `value × 10^unit` is the quantity (reference §2)."""

    type: int
    value: float
    unit_assumed: bool = False


@dataclass(frozen=True)
class MeasureGroup:
    meastime: int
    measures: tuple[Measure, ...]
    userid: int | None = None


@dataclass(frozen=True)
class MeasureStore:
    """`POST /cgi-bin/measure action=store`, WBS01 form or WS-50 `measuregrps` form (reference §1.4)."""

    sessionid: str | None
    mac: str | None
    userid: int | None
    groups: tuple[MeasureGroup, ...]
    warnings: tuple[str, ...] = ()


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ProtocolError(f"{what} is not a number: {str(value)[:40]!r}")
    try:
        number = float(value)
    except OverflowError:  # an integer of more than 308 digits
        raise ProtocolError(f"{what} is too large to be a measurement") from None
    if not math.isfinite(number):
        raise ProtocolError(f"{what} is not finite")
    return number


def _integer(value: Any, what: str, bounds: tuple[int, int]) -> int:
    number = _number(value, what)
    if number != int(number):
        raise ProtocolError(f"{what} is not an integer: {str(value)[:40]}")
    return _in_range(int(number), bounds, what)


def _scaled(value: float, exponent: int, what: str) -> float:
    scaled = value * 10.0**exponent
    if not math.isfinite(scaled):
        raise ProtocolError(f"{what}: {value:g} × 10^{exponent} is too large to be a measurement")
    return scaled


def _parse_measures(entries: Any, where: str, warnings: list[str]) -> tuple[Measure, ...]:
    if not isinstance(entries, list) or not entries:
        raise ProtocolError(f"{where}: 'measures' must be a non-empty list")
    if len(entries) > MAX_MEASURES_PER_GROUP:
        raise ProtocolError(f"{where}: {len(entries)} measures exceed {MAX_MEASURES_PER_GROUP}")
    measures = []
    for index, entry in enumerate(entries):
        what = f"{where}.measures[{index}]"
        if not isinstance(entry, dict):
            raise ProtocolError(f"{what} is not an object")
        measure_type = _integer(entry.get("type"), f"{what}.type", MEASURE_TYPE_RANGE)
        raw = _number(entry.get("value"), f"{what}.value")
        unit_assumed = False
        if "unit" in entry:
            exponent = _integer(entry["unit"], f"{what}.unit", EXPONENT_RANGE)
        elif measure_type == 1:
            # SCALEWS logged WS-50 weights without a unit (84683 = 84.683 kg); the scale sends -3 (§2).
            exponent, unit_assumed = -3, True
            warnings.append(f"{what}: weight without 'unit'; assumed -3 as the scale sends")
        else:
            exponent = 0
        measures.append(Measure(measure_type, _scaled(raw, exponent, what), unit_assumed))
    return tuple(measures)


def _unwrap_groups(document: Any, key: str) -> list[Any]:
    """Both shapes seen: `{"measuregrps": [...]}` (§1.4) and a bare array (§1.5)."""
    if isinstance(document, dict) and key in document:
        document = document[key]
    if not isinstance(document, list):
        raise ProtocolError(f"{key!r} must be a list of groups")
    if not document:
        raise ProtocolError(f"{key!r} holds no groups")
    if len(document) > MAX_GROUPS:
        raise ProtocolError(f"{key!r} holds {len(document)} groups, more than {MAX_GROUPS}")
    return document


def device_fields(form: dict[str, str]) -> tuple[str | None, str | None]:
    """(sessionid, MAC) as far as the request names them; either may be absent."""
    mac = _mac(form["macaddress"], "macaddress") if form.get("macaddress") else None
    return form.get("sessionid") or None, mac


def parse_measure_store(form: dict[str, str]) -> MeasureStore:
    """Parse the whole request before anything is stored: one bad group refuses them all."""
    warnings: list[str] = []
    sessionid, mac = device_fields(form)
    userid = _optional_int(form, "userid")
    groups: list[MeasureGroup] = []
    if "measuregrps" in form:
        for index, entry in enumerate(_unwrap_groups(_json_field(form, "measuregrps"), "measuregrps")):
            where = f"measuregrps[{index}]"
            if not isinstance(entry, dict):
                raise ProtocolError(f"{where} is not an object")
            meastime = _integer(entry.get("meastime"), f"{where}.meastime", MEASTIME_RANGE)
            group_user = entry.get("userid")
            groups.append(MeasureGroup(
                meastime=meastime,
                measures=_parse_measures(entry.get("measures"), where, warnings),
                userid=_integer(group_user, f"{where}.userid", INT32_RANGE) if group_user is not None else userid,
            ))
    elif "measures" in form:
        meastime = _form_int(_require(form, "meastime"), MEASTIME_RANGE, "meastime")
        document = _json_field(form, "measures")
        entries = document.get("measures") if isinstance(document, dict) else document
        groups.append(MeasureGroup(meastime, _parse_measures(entries, "measures", warnings), userid))
    else:
        raise ProtocolError("neither 'measures' nor 'measuregrps' in the request")
    return MeasureStore(sessionid, mac, userid, tuple(groups), tuple(warnings))


@dataclass(frozen=True)
class EnvironmentGroup:
    meastime: int
    values: dict[str, float]
    raw: dict[str, float] = field(default_factory=dict)


def parse_v2_measure(form: dict[str, str]) -> tuple[EnvironmentGroup, ...]:
    """`POST /cgi-bin/v2/measure`: `{"data": {"mantissa", "exponent", "unit"}, "type"}` entries (§1.5)."""
    groups = []
    for index, entry in enumerate(_unwrap_groups(_json_field(form, "measuregrps"), "measuregrps")):
        where = f"measuregrps[{index}]"
        if not isinstance(entry, dict):
            raise ProtocolError(f"{where} is not an object")
        meastime = _integer(entry.get("meastime"), f"{where}.meastime", MEASTIME_RANGE)
        measures = entry.get("measures")
        if not isinstance(measures, list) or not measures or len(measures) > MAX_MEASURES_PER_GROUP:
            raise ProtocolError(f"{where}: 'measures' must be a list of 1..{MAX_MEASURES_PER_GROUP}")
        values: dict[str, float] = {}
        raw: dict[str, float] = {}
        for position, measure in enumerate(measures):
            what = f"{where}.measures[{position}]"
            if not isinstance(measure, dict) or not isinstance(measure.get("data"), dict):
                raise ProtocolError(f"{what} has no 'data' object")
            data = measure["data"]
            measure_type = _integer(measure.get("type"), f"{what}.type", MEASURE_TYPE_RANGE)
            value = _scaled(
                _number(data.get("mantissa"), f"{what}.mantissa"),
                _integer(data.get("exponent", 0), f"{what}.exponent", EXPONENT_RANGE),
                what,
            )
            known = ENVIRONMENT_TYPES.get(measure_type)
            if known is not None:
                values[known[0]] = value
            else:
                raw[f"withings_type_{measure_type}"] = value
        groups.append(EnvironmentGroup(meastime, values, raw))
    return tuple(groups)


# ---------------------------------------------------------------------------------------------------
# Building replies


# Built once: `json.dumps` with arguments makes a new encoder per call. A reply is a tree of plain
# dicts built here, so no circular-reference check.
_encode_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=True, allow_nan=False,
                                check_circular=False).encode


def _reply_text(value: Any) -> str:
    """`value` as `encode_reply` writes it, as text: a reply is the concatenation of such parts."""
    return _encode_json(value).replace("/", "\\/")


def encode_reply(document: dict[str, Any]) -> bytes:
    """Compact JSON with `/` escaped as `\\/`, as the real server sends it (§3)."""
    return _reply_text(document).encode("ascii")


def status_reply(status: int = STATUS_OK, body: dict[str, Any] | None = None) -> bytes:
    if body is None and status == STATUS_OK:
        return _STATUS_OK_REPLY
    document: dict[str, Any] = {"status": status}
    if body is not None:
        document["body"] = body
    return encode_reply(document)


_STATUS_OK_REPLY = encode_reply({"status": STATUS_OK})


def new_once() -> str:
    """`<8 hex>-<8 hex>`, the nonce shape in every capture (§1.2)."""
    digits = secrets.token_hex(8)  # both halves from one call to the system's random source
    return f"{digits[:8]}-{digits[8:]}"


def new_session_id() -> str:
    """`NNNN-8hex-8hex`, the 2010–2014 shape (§1.3); short, like the originals, for fixed firmware buffers.
    The number and the digits come from one call to the system's random source (`randbelow` made one
    or two more): two bytes give 0..65535, kept below 63,000 so that each of 1000..9999 is as likely."""
    while True:
        random_bytes = secrets.token_bytes(10)
        number = int.from_bytes(random_bytes[:2], "big")
        if number < _SESSION_NUMBERS * (65536 // _SESSION_NUMBERS):
            break
    digits = random_bytes[2:].hex()
    return f"{1000 + number % _SESSION_NUMBERS}-{digits[:8]}-{digits[8:]}"


_SESSION_NUMBERS = 9000  # 1000..9999


@dataclass(frozen=True)
class ScaleUser:
    """One entry of `sp.users` (§1.3 field table)."""

    id: int
    short_name: str
    weight_kg: float
    height_m: float
    age_years: float
    sex: int  # 0 male, 1 female
    fm: int
    created: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sn": self.short_name,
            "wt": round(self.weight_kg, 3),
            "ht": round(self.height_m, 2),
            "agt": round(self.age_years, 1),
            "sx": self.sex,
            "fm": self.fm,
            "cr": self.created,
            "att": 0,
        }


@dataclass(frozen=True)
class ClockTransition:
    """`ctp`: current offset, the next DST change and the offset after it (§1.3)."""

    offset: int
    next_change: int
    next_offset: int

    def as_json(self) -> dict[str, int]:
        return {"goff": self.offset, "dst": self.next_change, "ngoff": self.next_offset}


def _offset_seconds(zone: ZoneInfo, moment: datetime) -> int:
    offset = moment.astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def clock_transition(zone: ZoneInfo, now: datetime, horizon: timedelta = timedelta(days=400)) -> ClockTransition:
    """Find the next change of UTC offset within `horizon`; `dst` and `ngoff` are 0 when there is none,
    as in the 2013 reply for a zone whose next change the server did not announce."""
    current = _offset_seconds(zone, now)
    step = timedelta(days=1)  # offsets never change twice within a day in the tz database
    low = now
    while low - now < horizon:
        high = low + step
        if _offset_seconds(zone, high) != current:
            while high - low > timedelta(seconds=1):  # bisect to the second the offset changes
                middle = low + (high - low) / 2
                if _offset_seconds(zone, middle) == current:
                    low = middle
                else:
                    high = middle
            # Offsets change on whole seconds, and (low, high] spans at most one: it is floor(high).
            return ClockTransition(current, math.floor(high.timestamp()), _offset_seconds(zone, high))
        low = high
    return ClockTransition(current, 0, 0)


def session_new_reply(
    session_id: str,
    users: list[ScaleUser],
    *,
    locale: str,
    gravity_m_s2: float,
    now: datetime,
    transition: ClockTransition,
    ind_extra: dict[str, int] | None = None,
) -> bytes:
    """The `session new` reply, shaped like the 2013 captures, and never with `syp.blc`: the scale is
    never offered a firmware image from here.

    It is `status_reply(STATUS_OK, {"sessionid", "sp", "ind", "syp", "ctp"})` written out in parts:
    the household's part (`sp` and `ind`) is the same from session to session until a weight, an age
    in tenths of years or the configuration changes, so its text is kept (rounding and writing out
    each person's numbers cost more than the rest of the reply)."""
    ind: dict[str, Any] = {"lg": locale, "imt": 1, "stp": 1, "f": 0, "g": round(gravity_m_s2 * 10000)}
    ind.update(ind_extra or {})
    household = _household_text(tuple(users), tuple(ind.items()))
    return (f'{{"status":{STATUS_OK},"body":{{"sessionid":{_reply_text(session_id)},{household},'
            f'"syp":{{"utc":{int(now.timestamp())}}},"ctp":{_reply_text(transition.as_json())}}}}}').encode("ascii")


@functools.lru_cache(maxsize=32)
def _household_text(users: tuple[ScaleUser, ...], ind: tuple[tuple[str, Any], ...]) -> str:
    return f'"sp":{_reply_text({"users": [user.as_json() for user in users]})},"ind":{_reply_text(dict(ind))}'

